"""`--mount` and `--device` as docker reads them, into docker's HostConfig.Mounts and
HostConfig.Devices entries, with docker's error texts (the CLI's for the syntax, the daemon's
for what only the host can say: a bind source that does not exist, a path that is no device).

Unlike -v, a --mount bind whose source is missing is an error, not a new directory."""
from __future__ import annotations

import csv
import errno
import os
import re
import stat

from node.engine import EngineError

MOUNT_TYPES = ("bind", "volume", "tmpfs")
PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
_RAM = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?$", re.I)
_RAM_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_BOOLS = {"1": True, "t": True, "true": True, "TRUE": True, "True": True, "T": True,
          "0": False, "f": False, "false": False, "FALSE": False, "False": False, "F": False}


def _flag_error(spec: str, flag: str, why: str) -> EngineError:
    return EngineError(f'invalid argument "{spec}" for "{flag}" flag: {why}', 125)


def _config_error(kind: str, why: str) -> EngineError:
    return EngineError(f'invalid mount config for type "{kind}": {why}', 125)


def ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes: binary units, an optional "b"/"ib"."""
    m = _RAM.match(text.strip())
    if not m:
        raise ValueError(text)
    return int(float(m.group(1)) * _RAM_UNITS[m.group(2).lower()])


def parse_mount(spec: str) -> dict:
    """A --mount value (CSV of key=value, as docker's) -> a HostConfig.Mounts entry."""
    try:
        fields = next(csv.reader([spec]))
    except (csv.Error, StopIteration):
        raise _flag_error(spec, "--mount", "invalid CSV") from None
    mount: dict = {"Type": "volume", "Source": "", "Target": ""}
    families: set[str] = set()
    for field in fields:
        key, sep, value = field.partition("=")
        key = key.lower()
        if not sep:
            if key in ("readonly", "ro"):
                mount["ReadOnly"] = True
                continue
            if key == "volume-nocopy":
                mount.setdefault("VolumeOptions", {})["NoCopy"] = True
                families.add("volume")
                continue
            raise _flag_error(spec, "--mount", f"invalid field '{field}' must be a key=value pair")
        if key == "type":
            mount["Type"] = value.lower()
        elif key in ("source", "src"):
            mount["Source"] = os.path.abspath(value) if value == "." or value.startswith("./") else value
        elif key in ("target", "dst", "destination"):
            mount["Target"] = value
        elif key in ("readonly", "ro"):
            if value not in _BOOLS:
                raise _flag_error(spec, "--mount", f"invalid value for {key}: {value}")
            mount["ReadOnly"] = _BOOLS[value]
        elif key == "consistency":
            mount["Consistency"] = value.lower()
        elif key == "bind-propagation":
            mount.setdefault("BindOptions", {})["Propagation"] = value.lower()
            families.add("bind")
        elif key in ("volume-driver", "volume-opt", "volume-label", "volume-nocopy", "volume-subpath"):
            opts = mount.setdefault("VolumeOptions", {})
            families.add("volume")
            if key == "volume-driver":
                opts.setdefault("DriverConfig", {})["Name"] = value
            elif key in ("volume-opt", "volume-label"):
                name, _, val = value.partition("=")
                target = opts.setdefault("DriverConfig", {}).setdefault("Options", {}) if key == "volume-opt" \
                    else opts.setdefault("Labels", {})
                target[name] = val
            elif key == "volume-subpath":
                opts["Subpath"] = value
            else:
                if value not in _BOOLS:
                    raise _flag_error(spec, "--mount", f"invalid value for {key}: {value}")
                opts["NoCopy"] = _BOOLS[value]
        elif key == "tmpfs-size":
            try:
                mount.setdefault("TmpfsOptions", {})["SizeBytes"] = ram_in_bytes(value)
            except ValueError:
                raise _flag_error(spec, "--mount", f"invalid value for {key}: {value}") from None
            families.add("tmpfs")
        elif key == "tmpfs-mode":
            try:
                mode = int(value, 8)
            except ValueError:
                raise _flag_error(spec, "--mount", f"invalid value for {key}: {value}") from None
            mount.setdefault("TmpfsOptions", {})["Mode"] = mode
            families.add("tmpfs")
        else:
            raise _flag_error(spec, "--mount", f"unexpected key '{key}' in '{field}'")
    if not mount["Type"]:
        raise _flag_error(spec, "--mount", "type is required")
    if not mount["Target"]:
        raise _flag_error(spec, "--mount", "target is required")
    for family in sorted(families):
        if family != mount["Type"]:
            raise _flag_error(spec, "--mount", f"cannot mix '{family}-*' options with mount type '{mount['Type']}'")
    if not mount["Source"]:
        del mount["Source"]  # docker's omitempty
    return mount


def check_mount(m: dict) -> None:
    """The daemon's checks (moby volume/mounts): what the syntax cannot tell."""
    kind = m["Type"]
    m = {"Source": "", **m}
    if kind not in MOUNT_TYPES:
        raise _config_error(kind, "mount type unknown")
    if not m["Target"].startswith("/"):
        raise _config_error(kind, f"invalid mount path: '{m['Target']}' mount path must be absolute")
    if m["Target"].rstrip("/") == "":
        raise _config_error(kind, "invalid specification: destination can't be '/'")
    if kind == "bind":
        if not m["Source"]:
            raise _config_error(kind, "field Source must not be empty")
        if not m["Source"].startswith("/"):
            raise _config_error(kind, f"invalid mount path: '{m['Source']}' mount path must be absolute")
        if not os.path.exists(m["Source"]):
            raise _config_error(kind, f"bind source path does not exist: {m['Source']}")
        propagation = (m.get("BindOptions") or {}).get("Propagation")
        if propagation and propagation not in PROPAGATIONS:
            raise _config_error(kind, f"invalid propagation mode: {propagation}")
    elif kind == "tmpfs":
        if m["Source"]:
            raise _config_error(kind, "field Source must not be specified")
    elif m["Source"] and not re.match(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$", m["Source"]):
        raise _config_error(kind, f"invalid volume name {m['Source']!r}")


def tmpfs_options(m: dict) -> str:
    """A --mount tmpfs's mount data, as the --tmpfs options string."""
    opts = m.get("TmpfsOptions") or {}
    words = []
    if opts.get("SizeBytes"):
        words.append(f"size={opts['SizeBytes']}")
    if opts.get("Mode"):
        words.append(f"mode={opts['Mode']:o}")
    if m.get("ReadOnly"):
        words.append("ro")
    return ",".join(words)


_DEVICE_MODE = re.compile(r"^[rwm]{1,3}$")


def parse_device(spec: str) -> dict:
    """--device HOST[:CONTAINER][:PERMS] -> a HostConfig.Devices entry (docker CLI's checks)."""
    if spec.count(":") > 2 or not spec.split(":")[0]:
        raise _flag_error(spec, "--device", f"bad format for path: {spec}")
    parts = spec.split(":")
    host, container, perms = parts[0], parts[0], "rwm"
    if len(parts) == 2:
        if _valid_mode(parts[1]):
            perms = parts[1]
        else:
            container = parts[1]
    elif len(parts) == 3:
        container, perms = parts[1], parts[2]
        if not _valid_mode(perms):
            raise _flag_error(spec, "--device", f"bad mode specified: {perms}")
    if not container.startswith("/"):
        raise _flag_error(spec, "--device", f"{container} is not an absolute path")
    return {"PathOnHost": host, "PathInContainer": os.path.normpath(container), "CgroupPermissions": perms}


def _valid_mode(mode: str) -> bool:
    return bool(_DEVICE_MODE.match(mode)) and len(set(mode)) == len(mode)


def device_nodes(entry: dict) -> list[dict]:
    """The OCI linux.devices entries a HostConfig.Devices entry stands for: the host node's type
    and numbers (a directory: every node under it, as docker). The daemon's error otherwise."""
    host, inside = entry["PathOnHost"], entry["PathInContainer"]

    def node(path: str, st: os.stat_result, dest: str) -> dict:
        return {"path": dest, "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
                "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                "fileMode": stat.S_IMODE(st.st_mode), "uid": 0, "gid": 0}
    try:
        st = os.stat(host)
    except OSError as e:
        # docker run's status for a start error that reads "no such file or directory": 127
        raise EngineError(f'error gathering device information while adding custom device "{host}": '
                          f'{(e.strerror or str(e)).lower()}', 127 if e.errno == errno.ENOENT else 125) from None
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return [node(host, st, inside)]
    if not stat.S_ISDIR(st.st_mode):
        raise EngineError(f'error gathering device information while adding custom device "{host}": '
                          "not a device node", 125)
    found = []
    for dirpath, _dirs, files in os.walk(host):
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            try:
                sub = os.stat(path)
            except OSError:
                continue
            if stat.S_ISCHR(sub.st_mode) or stat.S_ISBLK(sub.st_mode):
                found.append(node(path, sub, os.path.join(inside, os.path.relpath(path, host))))
    return found


def device_rules(entry: dict, nodes: list[dict]) -> list[dict]:
    """The cgroup allow rules for one --device (its permissions)."""
    return [{"allow": True, "type": n["type"], "major": n["major"], "minor": n["minor"],
             "access": entry.get("CgroupPermissions") or "rwm"} for n in nodes]

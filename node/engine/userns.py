"""`--userns=private`: the container's root is an unprivileged host uid.

The id range comes from the `dockyard` entry of /etc/subuid and /etc/subgid (as Docker's
userns-remap takes the `dockremap` user's), else DEFAULT_RANGE: container ids 0..65535 are host
ids 100000..165535. The runtime creates the user namespace and writes its maps (OCI
linux.uidMappings/gidMappings). The image's layers stay as they are on disk: each one is bind
mounted through an *idmapped* mount (a helper user namespace with the same maps), so the overlay
shows files owned by host 0 as owned by host 100000, i.e. by the container's root. Files the
container writes land in its upper dir owned by host 100000.

Everything the container's root must reach by path from inside the namespace (bundle, rootfs,
/etc/hosts files) lies under ROOT/containers/<id>: those directories get search permission for
others, and ROOT's own ancestors must already allow it (checked, with a clear error).
"""
from __future__ import annotations

import os
import stat

from node.engine import EngineError

SUBID_USER = "dockyard"
DEFAULT_RANGE = (100000, 65536)
MODES = ("host", "private")


def validate_mode(text: str | None) -> str:
    mode = text or "host"
    if mode not in MODES:
        raise EngineError(f"invalid --userns {text!r} (supported: host, private)", 125)
    return mode


def _subid_range(path: str) -> tuple[int, int] | None:
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] == SUBID_USER and parts[1].isdigit() and parts[2].isdigit():
            start, size = int(parts[1]), int(parts[2])
            if start > 0 and size > 0:
                return start, min(size, 65536)
    return None


def mappings(etc: str = "/etc") -> dict:
    """{"uid": [...], "gid": [...]} in OCI's LinuxIDMapping form, stored in the container record."""
    result = {}
    for kind in ("uid", "gid"):
        start, size = _subid_range(os.path.join(etc, f"sub{kind}")) or DEFAULT_RANGE
        result[kind] = [{"containerID": 0, "hostID": start, "size": size}]
    return result


def host_root(maps: dict) -> tuple[int, int]:
    """The host uid and gid the container's root runs as."""
    return maps["uid"][0]["hostID"], maps["gid"][0]["hostID"]


def map_text(entries: list[dict]) -> str:
    return "".join(f"{e['containerID']} {e['hostID']} {e['size']}\n" for e in entries)


def write_maps(pid: int, maps: dict) -> None:
    """The parent's half: a privileged writer needs no setgroups=deny before gid_map."""
    for kind in ("uid", "gid"):
        with open(f"/proc/{pid}/{kind}_map", "w") as f:
            f.write(map_text(maps[kind]))


def _searchable_by(path: str, uid: int, gid: int) -> bool:
    st = os.stat(path)
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def open_path_for(container, maps: dict) -> None:
    """Give the container's root search permission down to its bundle; refuse clearly if an
    ancestor we do not own would stop it."""
    uid, gid = host_root(maps)
    containers_dir = container.dir.parent
    root_dir = containers_dir.parent
    for d in (root_dir, containers_dir, container.dir, container.bundle):
        mode = os.stat(d).st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(d, stat.S_IMODE(mode) | stat.S_IXOTH)
    for d in [p for p in root_dir.resolve().parents]:
        if not _searchable_by(str(d), uid, gid):
            raise EngineError(f"--userns=private: the container's root (host uid {uid}) cannot reach "
                              f"{root_dir}: {d} needs search permission for others (chmod o+x)", 125)
    os.chown(container.dir / "upper", uid, gid)
    os.chown(container.dir / "work", uid, gid)


class HelperNamespace:
    """A user namespace with the container's maps, held by a paused child, for idmapped mounts.
    Use as a context manager: `.fd` is an open /proc/PID/ns/user."""

    def __init__(self, maps: dict) -> None:
        self.maps = maps
        self.fd = -1
        self.pid = 0

    def __enter__(self) -> "HelperNamespace":
        from node.engine import runtimes
        ready_r, ready_w = os.pipe()
        hold_r, hold_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(ready_r), os.close(hold_w)
                runtimes.new_user_namespace()
                os.write(ready_w, b"U")
                os.read(hold_r, 1)
            finally:
                os._exit(0)
        os.close(ready_w), os.close(hold_r)
        self.pid = pid
        try:
            if os.read(ready_r, 1) != b"U":
                raise EngineError("--userns=private: could not create a user namespace", 125)
            write_maps(pid, self.maps)
            self.fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        except BaseException:
            self._stop(hold_w)
            raise
        finally:
            os.close(ready_r)
        self._hold_w = hold_w
        return self

    def _stop(self, hold_w: int) -> None:
        os.close(hold_w)
        os.waitpid(self.pid, 0)

    def __exit__(self, *exc) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self._stop(self._hold_w)


def shift_tree(path: str, maps: dict) -> None:
    """Give the container's root what host root owns under `path` (ids below the range's size
    move up by the range's start), so a fresh volume is the container's as it would be on the
    host. Symlinks themselves are changed, never followed."""
    uid_base, gid_base = host_root(maps)
    size = min(maps["uid"][0]["size"], maps["gid"][0]["size"])

    def shift(p: str) -> None:
        st = os.lstat(p)
        uid = st.st_uid + uid_base if st.st_uid < size else st.st_uid
        gid = st.st_gid + gid_base if st.st_gid < size else st.st_gid
        if (uid, gid) != (st.st_uid, st.st_gid):
            os.chown(p, uid, gid, follow_symlinks=False)
            if not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) != stat.S_IMODE(os.lstat(p).st_mode):
                os.chmod(p, stat.S_IMODE(st.st_mode))  # chown clears setuid/setgid bits

    shift(path)
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            shift(os.path.join(top, name))


def adopt(container, rootfs_dir: str, workdir: str) -> None:
    """At each start (monitor.prepare): the files the engine wrote for the container (its
    /etc/hosts and co., a working directory it had to create), and the anonymous volumes it owns
    alone, belong to the container's root."""
    maps = container.spec.id_mappings
    uid, gid = host_root(maps)
    # through the idmapped layers nothing of the image shows as host uid 0: what does was made
    # in the upper dir by the engine
    path = workdir
    while len(path) > len(rootfs_dir) and path.startswith(rootfs_dir + "/"):
        if os.lstat(path).st_uid == 0:
            os.chown(path, uid, gid, follow_symlinks=False)
        path = os.path.dirname(path)
    for name in ("hostname", "hosts", "resolv.conf"):
        path = container.dir / name
        if path.exists():
            os.chown(path, uid, gid)
    anonymous = set(container.spec.anonymous_volumes)
    for m in container.spec.mounts:
        if m["Type"] == "volume" and m.get("Name") in anonymous and os.stat(m["Source"]).st_uid == 0:
            os.chmod(os.path.dirname(m["Source"]), os.stat(os.path.dirname(m["Source"])).st_mode | stat.S_IXOTH)
            shift_tree(m["Source"], maps)

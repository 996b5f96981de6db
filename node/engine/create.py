"""`create`: turn run options and an image into a container record (no process yet).

Docker's precedence: --entrypoint replaces the image's Entrypoint and then drops its Cmd; a
command on the line replaces Cmd; -e beats --env-file beats the image's Env; -w, -u, --hostname
replace WorkingDir, User and the default hostname (the short id). The image's Volumes become
anonymous volumes unless a -v or --tmpfs already covers that path.
"""
from __future__ import annotations

import os
from pathlib import Path

from node.engine import DEFAULT_NETWORK, EngineError
from node.engine.options import (RunOptions, parse_cpus, parse_labels, parse_restart, parse_size, parse_tmpfs,
                                 parse_volume, read_env_file, validate_name)
from node.engine.records import Container, name_taken, names_lock, new_id, new_state, now_iso, random_name
from node.engine.volumes import create_volume

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def merge_env(image_env: list[str], env_files: list[str], env: list[str]) -> list[str]:
    merged: dict[str, str] = {}
    for item in image_env or []:
        key, _, value = item.partition("=")
        merged[key] = value
    overrides = [line for path in env_files for line in read_env_file(path)] + list(env)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not key:
            raise EngineError(f"invalid environment variable: {item!r}", 125)
        if not sep:  # `-e NAME` takes the value from the caller's environment, or is dropped
            if key in os.environ:
                merged[key] = os.environ[key]
            continue
        merged[key] = value
    merged.setdefault("PATH", DEFAULT_PATH)
    return [f"{k}={v}" for k, v in merged.items()]


def command_line(opts: RunOptions, image_config: dict) -> tuple[list[str], list[str]]:
    if opts.entrypoint is not None:
        entrypoint = [opts.entrypoint] if opts.entrypoint else []
        cmd = list(opts.command)
    else:
        entrypoint = list(image_config.get("Entrypoint") or [])
        cmd = list(opts.command) or list(image_config.get("Cmd") or [])
    return entrypoint, cmd


def _mounts(root: Path, opts: RunOptions, image_config: dict) -> tuple[list[dict], list[str]]:
    mounts: list[dict] = []
    anonymous: list[str] = []
    for spec in opts.volumes:
        source, target, ro = parse_volume(spec)
        if source.startswith("/"):
            if not os.path.exists(source):
                os.makedirs(source, exist_ok=True)  # docker creates a missing bind source dir
            mounts.append({"Type": "bind", "Source": os.path.realpath(source), "Destination": target,
                           "Mode": "ro" if ro else "", "RW": not ro, "Propagation": "rprivate"})
            continue
        volume = create_volume(root, source or None, anonymous=not source)
        if not source:
            anonymous.append(volume["Name"])
        mounts.append({"Type": "volume", "Name": volume["Name"], "Source": volume["Mountpoint"],
                       "Destination": target, "Driver": "local", "Mode": "ro" if ro else "z",
                       "RW": not ro, "Propagation": ""})
    for spec in opts.tmpfs:
        target, tmpfs_opts = parse_tmpfs(spec)
        mounts.append({"Type": "tmpfs", "Source": "", "Destination": target, "Mode": tmpfs_opts,
                       "RW": True, "Propagation": ""})
    taken = {m["Destination"].rstrip("/") or "/" for m in mounts}
    for target in sorted(image_config.get("Volumes") or {}):
        if target.rstrip("/") in taken or not target.startswith("/"):
            continue
        volume = create_volume(root, None, anonymous=True)
        anonymous.append(volume["Name"])
        mounts.append({"Type": "volume", "Name": volume["Name"], "Source": volume["Mountpoint"],
                       "Destination": target, "Driver": "local", "Mode": "", "RW": True, "Propagation": ""})
    for m in mounts:
        if m["Destination"].rstrip("/") in ("", "/"):
            raise EngineError("invalid mount: the container's root cannot be a mount destination", 125)
    return mounts, anonymous


def host_config(opts: RunOptions) -> dict:
    restart_name, retries = parse_restart(opts.restart or "no")
    if opts.remove and restart_name != "no":
        raise EngineError("conflicting options: cannot specify both --restart and --rm", 125)
    memory = parse_size(opts.memory) if opts.memory else 0
    if memory and memory < 6 * 1024 * 1024:
        raise EngineError("minimum memory limit allowed is 6MB", 125)
    quota, period = parse_cpus(opts.cpus) if opts.cpus else (0, 0)
    if opts.runtime not in ("builtin", "runc", "crun"):
        raise EngineError(f"unknown or invalid runtime name: {opts.runtime}", 125)
    return {
        "Binds": [v for v in opts.volumes], "Tmpfs": dict(parse_tmpfs(t) for t in opts.tmpfs),
        "Memory": memory, "MemorySwap": memory if memory else 0, "NanoCpus": quota * 10000 if quota else 0,
        "CpuQuota": quota, "CpuPeriod": period, "PidsLimit": opts.pids_limit or 0,
        "RestartPolicy": {"Name": restart_name, "MaximumRetryCount": retries},
        "AutoRemove": opts.remove, "ReadonlyRootfs": opts.read_only,
        "NetworkMode": opts.network or DEFAULT_NETWORK, "PortBindings": list(opts.publish),
        "PublishAllPorts": opts.publish_all, "Runtime": opts.runtime, "Init": opts.init,
        "SecurityOpt": _security_opts(opts.security_opt),
        "UsernsMode": _userns_mode(opts.userns),
    }


def _userns_mode(value: str | None) -> str:
    if not value:
        return ""  # the host's user namespace, like docker's default
    from node.engine.userns import validate_mode
    return "" if validate_mode(value) == "host" else "private"


def _security_opts(values: list[str]) -> list[str]:
    for value in values:
        if value not in ("seccomp=unconfined", "no-new-privileges", "no-new-privileges=true"):
            raise EngineError(f"unsupported --security-opt {value!r} (supported: seccomp=unconfined)", 125)
    return list(values)


def create_container(root: str | Path, opts: RunOptions, image) -> Container:
    root = Path(root)
    image_config = dict(getattr(image.config, "config", None) or {})
    hc = host_config(opts)
    entrypoint, cmd = command_line(opts, image_config)
    args = entrypoint + cmd
    if not args:
        raise EngineError("No command specified", 125)
    cid = new_id()
    hostname = opts.hostname or cid[:12]
    config = {
        "Hostname": hostname, "User": opts.user if opts.user is not None else image_config.get("User", ""),
        "Env": merge_env(image_config.get("Env") or [], opts.env_files, opts.env),
        "Cmd": cmd, "Entrypoint": entrypoint or None, "Image": opts.image,
        "WorkingDir": opts.workdir or image_config.get("WorkingDir") or "/",
        "Tty": opts.tty, "OpenStdin": opts.interactive, "AttachStdin": opts.interactive and not opts.detach,
        "Volumes": image_config.get("Volumes"), "ExposedPorts": image_config.get("ExposedPorts") or {},
        "StopSignal": image_config.get("StopSignal") or "SIGTERM", "Labels": {**(image_config.get("Labels") or {}), **parse_labels(opts.label_files, opts.labels)},
        "NetworkAliases": list(opts.network_aliases), "IPAddress": opts.ip,
    }
    if opts.tty and not any(e.startswith("TERM=") for e in config["Env"]):
        config["Env"].append("TERM=xterm")
    if not config["WorkingDir"].startswith("/"):
        raise EngineError(f"the working directory '{config['WorkingDir']}' is invalid, it needs to be an absolute path", 125)
    container = Container(root, cid)
    with names_lock(root):
        if opts.name:
            name = validate_name(opts.name)
            owner = name_taken(root, name)
            if owner:
                raise EngineError(f'Conflict. The container name "/{name}" is already in use by container '
                                  f'"{owner}". You have to remove (or rename) that container to be able to reuse that name.', 125)
        else:
            name = random_name(root)
        container.dir.mkdir(parents=True)
        try:
            for sub in ("upper", "work", "bundle/rootfs"):
                (container.dir / sub).mkdir(parents=True)
            mounts, anonymous = _mounts(root, opts, image_config)
            id_maps = None
            if hc["UsernsMode"] == "private":
                from node.engine import userns
                id_maps = userns.mappings()
                userns.open_path_for(container, id_maps)
            container.save_meta({
                "Id": cid, "Name": name, "Created": now_iso(), "Image": image.id, "ImageRef": opts.image,
                "Path": args[0], "Args": args[1:], "Config": config, "HostConfig": hc, "Mounts": mounts,
                "AnonymousVolumes": anonymous, "LayerDirs": [str(d) for d in image.layer_dirs()],
                "Driver": "overlay", **({"IdMappings": id_maps} if id_maps else {}),
            })
            container.update_state(**new_state())
        except BaseException:
            import shutil
            shutil.rmtree(container.dir, ignore_errors=True)
            raise
    return container


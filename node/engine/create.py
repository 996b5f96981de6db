"""`create`: turn run options and an image into a container record (no process yet).

Docker's precedence: --entrypoint replaces the image's Entrypoint and then drops its Cmd; a
command on the line replaces Cmd; -e beats --env-file beats the image's Env; -w, -u, --hostname
replace WorkingDir, User and the default hostname (the short id). The image's Volumes become
anonymous volumes unless a -v or --tmpfs already covers that path.
"""
from __future__ import annotations

import os
from pathlib import Path

from node.engine import DEFAULT_NETWORK, EngineError, events
from node.engine.options import (RunOptions, parse_add_host, parse_caps, parse_cpus, parse_dns, parse_dns_search,
                                 parse_stop_signal, parse_stop_timeout, parse_sysctls, parse_ulimit, parse_labels, parse_restart, parse_size, parse_tmpfs,
                                 parse_volume, read_env_file, validate_name)
from node.engine.health import healthcheck_config
from node.engine.records import Container, name_taken, names_lock, new_id, new_state, now_iso, random_name
from node.engine.spec import Config, ContainerSpec, HostConfig, RestartPolicy
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
    mounts += _mount_flag_mounts(root, opts, anonymous)
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
    seen = set()
    for m in mounts:
        if m["Destination"].rstrip("/") in ("", "/"):
            raise EngineError("invalid mount: the container's root cannot be a mount destination", 125)
        if os.path.normpath(m["Destination"]) in seen:
            raise EngineError(f"Duplicate mount point: {os.path.normpath(m['Destination'])}", 125)
        seen.add(os.path.normpath(m["Destination"]))
    return mounts, anonymous


def _mount_flag_mounts(root: Path, opts: RunOptions, anonymous: list[str]) -> list[dict]:
    """--mount entries as Docker's MountPoint objects (what `inspect` shows under Mounts)."""
    if not opts.mounts:
        return []
    from node.engine.mountopts import check_mount, parse_mount, tmpfs_options
    result = []
    for spec in opts.mounts:
        m = parse_mount(spec)
        check_mount(m)
        ro = bool(m.get("ReadOnly"))
        if m["Type"] == "bind":
            result.append({"Type": "bind", "Source": os.path.realpath(m["Source"]), "Destination": m["Target"],
                           "Mode": "", "RW": not ro,
                           "Propagation": (m.get("BindOptions") or {}).get("Propagation") or "rprivate"})
        elif m["Type"] == "tmpfs":
            result.append({"Type": "tmpfs", "Source": "", "Destination": m["Target"], "Mode": tmpfs_options(m),
                           "RW": not ro, "Propagation": ""})
        else:
            volume_opts = m.get("VolumeOptions") or {}
            driver = volume_opts.get("DriverConfig") or {}
            if driver.get("Name") not in (None, "", "local"):
                raise EngineError(f"error looking up volume plugin {driver['Name']}: plugin not found", 125)
            volume = create_volume(root, m.get("Source") or None, anonymous=not m.get("Source"),
                                   labels=volume_opts.get("Labels"), options=driver.get("Options"))
            if not m.get("Source"):
                anonymous.append(volume["Name"])
            result.append({"Type": "volume", "Name": volume["Name"], "Source": volume["Mountpoint"],
                           "Destination": m["Target"], "Driver": "local", "Mode": "z", "RW": not ro,
                           "Propagation": "", **({"NoCopy": True} if volume_opts.get("NoCopy") else {})})
    return result


def host_config(opts: RunOptions, default_pids_limit: int = 0) -> HostConfig:
    restart_name, retries = parse_restart(opts.restart or "no")
    if opts.remove and restart_name != "no":
        raise EngineError("conflicting options: cannot specify both --restart and --rm", 125)
    memory = parse_size(opts.memory) if opts.memory else 0
    if memory and memory < 6 * 1024 * 1024:
        raise EngineError("minimum memory limit allowed is 6MB", 125)
    quota, period = parse_cpus(opts.cpus) if opts.cpus else (0, 0)
    if opts.runtime not in ("builtin", "runc", "crun"):
        raise EngineError(f"unknown or invalid runtime name: {opts.runtime}", 125)
    return HostConfig(
        binds=list(opts.volumes), tmpfs=dict(parse_tmpfs(t) for t in opts.tmpfs),
        memory=memory, memory_swap=memory if memory else 0, nano_cpus=quota * 10000 if quota else 0,
        cpu_quota=quota, cpu_period=period, pids_limit=_pids_limit(opts.pids_limit, default_pids_limit),
        restart_policy=RestartPolicy(name=restart_name, maximum_retry_count=retries),
        auto_remove=opts.remove, readonly_rootfs=opts.read_only,
        network_mode=opts.network or DEFAULT_NETWORK, port_bindings=list(opts.publish),
        publish_all_ports=opts.publish_all, runtime=opts.runtime, init=opts.init,
        security_opt=_security_opts(opts.security_opt), userns_mode=_userns_mode(opts.userns),
        extra_hosts=[parse_add_host(h) for h in opts.add_hosts], dns=[parse_dns(d) for d in opts.dns],
        dns_search=[parse_dns_search(d) for d in opts.dns_search],
        cap_add=parse_caps(opts.cap_add, "CapAdd"), cap_drop=parse_caps(opts.cap_drop, "CapDrop"),
        privileged=bool(opts.privileged), ulimits=[parse_ulimit(u) for u in opts.ulimits],
        shm_size=_shm_size(opts.shm_size), group_add=list(opts.group_add),
        sysctls=parse_sysctls(opts.sysctls, opts.network or DEFAULT_NETWORK),
        mounts=_mount_entries(opts.mounts), devices=_devices(opts.devices),
        dns_options=[o.strip() for o in opts.dns_options if o.strip()],
    )


def _mount_entries(specs: list[str]) -> list[dict]:
    if not specs:
        return []  # node/engine/mountopts.py (csv) only for a run that asks
    from node.engine.mountopts import parse_mount
    return [parse_mount(s) for s in specs]


def _devices(specs: list[str]) -> list[dict]:
    """--device entries, checked against the host now (the nodes are made at every start)."""
    if not specs:
        return []
    from node.engine.mountopts import device_nodes, parse_device
    entries = [parse_device(s) for s in specs]
    for entry in entries:
        device_nodes(entry)
    return entries


def _shm_size(text: str | None) -> int:
    size = parse_size(text) if text else 0
    return size or 64 * 1024 * 1024  # docker's default; 0 means the default too


def _pids_limit(given: int | None, default: int) -> int:
    """--pids-limit wins (0 or -1: none, as Docker reads them); else the node's
    default-pids-limit (node/engine/settings.py). 0 is "no limit" in the record."""
    limit = default if given is None else given
    return max(limit, 0)


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
    from node.engine import settings
    hc = host_config(opts, settings.load(root).default_pids_limit)
    entrypoint, cmd = command_line(opts, image_config)
    args = entrypoint + cmd
    if not args:
        raise EngineError("No command specified", 125)
    cid = new_id()
    hostname = opts.hostname or cid[:12]
    config = Config(
        hostname=hostname, user=opts.user if opts.user is not None else image_config.get("User", ""),
        env=merge_env(image_config.get("Env") or [], opts.env_files, opts.env),
        cmd=cmd, entrypoint=entrypoint or None, image=opts.image,
        working_dir=opts.workdir or image_config.get("WorkingDir") or "/",
        tty=opts.tty, open_stdin=opts.interactive, attach_stdin=opts.interactive and not opts.detach,
        volumes=image_config.get("Volumes"), exposed_ports=image_config.get("ExposedPorts") or {},
        stop_signal=parse_stop_signal(opts.stop_signal) if opts.stop_signal
        else image_config.get("StopSignal") or "SIGTERM",
        stop_timeout=parse_stop_timeout(opts.stop_timeout),
        labels={**(image_config.get("Labels") or {}), **parse_labels(opts.label_files, opts.labels)},
        network_aliases=list(opts.network_aliases), ip_address=opts.ip,
        healthcheck=healthcheck_config(opts, image_config.get("Healthcheck")),
    )
    if opts.tty and not any(e.startswith("TERM=") for e in config.env):
        config.env.append("TERM=xterm")
    if not config.working_dir.startswith("/"):
        raise EngineError(f"the working directory '{config.working_dir}' is invalid, it needs to be an absolute path", 125)
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
            if hc.userns_mode == "private":
                from node.engine import userns
                id_maps = userns.mappings()
                userns.open_path_for(container, id_maps)
            container.save_spec(ContainerSpec(
                id=cid, name=name, created=now_iso(), image=image.id, image_ref=opts.image,
                path=args[0], args=args[1:], config=config, host_config=hc, mounts=mounts,
                anonymous_volumes=anonymous, layer_dirs=[str(d) for d in image.layer_dirs()],
                driver="overlay", id_mappings=id_maps or None))
            container.update_state(**new_state())
        except BaseException:
            import shutil
            shutil.rmtree(container.dir, ignore_errors=True)
            raise
    events.container_event(container, "create")
    return container


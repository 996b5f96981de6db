"""`inspect` and `ps`: the container's record as Docker shows it."""
from __future__ import annotations

from node.engine.records import Container, to_json
from node.engine.status import current_state, describe


def inspect_container(container: Container) -> dict:
    spec = container.spec
    state = current_state(container)
    network = state.get("Network") or {}
    mounts = [dict(m) for m in spec.mounts]
    return {
        "Id": container.id,
        "Created": spec.created,
        "Path": spec.path,
        "Args": spec.args,
        "State": {
            "Status": state.get("Status"), "Running": state.get("Status") in ("running", "paused"),
            "Paused": state.get("Status") == "paused", "Restarting": state.get("Status") == "restarting",
            "OOMKilled": bool(state.get("OOMKilled")), "Dead": False, "Pid": state.get("Pid", 0),
            "ExitCode": state.get("ExitCode", 0), "Error": state.get("Error", ""),
            "StartedAt": state.get("StartedAt"), "FinishedAt": state.get("FinishedAt"),
            **({"Health": state["Health"]} if state.get("Health") else {}),
        },
        "Image": spec.image,
        "ResolvConfPath": str(container.dir / "resolv.conf"),
        "HostnamePath": str(container.dir / "hostname"),
        "HostsPath": str(container.dir / "hosts"),
        "LogPath": str(container.log_path),
        "Name": "/" + spec.name,
        "RestartCount": state.get("RestartCount", 0),
        "Driver": spec.driver,
        "Platform": "linux",
        "HostConfig": to_json(spec.host_config),
        "GraphDriver": {"Name": "overlay", "Data": {
            "LowerDir": ":".join(reversed(spec.layer_dirs)),
            "UpperDir": str(container.dir / "upper"), "WorkDir": str(container.dir / "work"),
            "MergedDir": str(container.rootfs)}},
        "Mounts": mounts,
        "Config": to_json(spec.config),
        "NetworkSettings": {
            "NetworkMode": spec.host_config.network_mode,
            # state["Network"] is node.network's Attachment.to_json(): docker's field names
            **(network if isinstance(network, dict) else {}),
        },
    }


def ps_row(container: Container) -> dict:
    spec = container.spec
    state = current_state(container)
    command = " ".join([spec.path] + list(spec.args))
    if len(command) > 20:
        command = command[:19] + "…"
    network = state.get("Network") or {}
    ports = ""
    if isinstance(network, dict) and state.get("Status") == "running":
        ports = ", ".join(f"{'[%s]' % b['HostIp'] if ':' in b['HostIp'] else b['HostIp']}:{b['HostPort']}->{key}"
                          for key, binds in (network.get("Ports") or {}).items() for b in binds or [])
    from node.engine.records import since
    return {
        "ID": container.id[:12], "Image": spec.image_ref or spec.image,
        "Command": f'"{command}"', "Created": _ago(since(spec.created)),
        "Status": describe(state), "Ports": ports, "Names": spec.name, "State": state.get("Status"),
    }


def _ago(seconds: float) -> str:
    from node.engine.status import human_duration
    return f"{human_duration(seconds)} ago"

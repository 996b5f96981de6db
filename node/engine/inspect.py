"""`inspect` and `ps`: the container's record as Docker shows it."""
from __future__ import annotations

from node.engine.records import Container
from node.engine.status import current_state, describe


def inspect_container(container: Container) -> dict:
    meta = container.meta
    state = current_state(container)
    network = state.get("Network") or {}
    mounts = [{k: v for k, v in m.items()} for m in meta.get("Mounts") or []]
    return {
        "Id": container.id,
        "Created": meta["Created"],
        "Path": meta["Path"],
        "Args": meta["Args"],
        "State": {
            "Status": state.get("Status"), "Running": state.get("Status") in ("running", "paused"),
            "Paused": state.get("Status") == "paused", "Restarting": state.get("Status") == "restarting",
            "OOMKilled": bool(state.get("OOMKilled")), "Dead": False, "Pid": state.get("Pid", 0),
            "ExitCode": state.get("ExitCode", 0), "Error": state.get("Error", ""),
            "StartedAt": state.get("StartedAt"), "FinishedAt": state.get("FinishedAt"),
        },
        "Image": meta["Image"],
        "ResolvConfPath": str(container.dir / "resolv.conf"),
        "HostnamePath": str(container.dir / "hostname"),
        "HostsPath": str(container.dir / "hosts"),
        "LogPath": str(container.log_path),
        "Name": "/" + meta["Name"],
        "RestartCount": state.get("RestartCount", 0),
        "Driver": meta.get("Driver", "overlay"),
        "Platform": "linux",
        "HostConfig": meta["HostConfig"],
        "GraphDriver": {"Name": "overlay", "Data": {
            "LowerDir": ":".join(reversed(meta.get("LayerDirs") or [])),
            "UpperDir": str(container.dir / "upper"), "WorkDir": str(container.dir / "work"),
            "MergedDir": str(container.rootfs)}},
        "Mounts": mounts,
        "Config": meta["Config"],
        "NetworkSettings": {
            "NetworkMode": meta["HostConfig"].get("NetworkMode"),
            # state["Network"] is node.network's Attachment.to_json(): docker's field names
            **(network if isinstance(network, dict) else {}),
        },
    }


def ps_row(container: Container) -> dict:
    meta = container.meta
    state = current_state(container)
    command = " ".join([meta["Path"]] + list(meta["Args"]))
    if len(command) > 20:
        command = command[:19] + "…"
    network = state.get("Network") or {}
    ports = ""
    if isinstance(network, dict) and state.get("Status") == "running":
        ports = ", ".join(f"{b['HostIp']}:{b['HostPort']}->{key}"
                          for key, binds in (network.get("Ports") or {}).items() for b in binds or [])
    from node.engine.records import since
    return {
        "ID": container.id[:12], "Image": meta.get("ImageRef") or meta["Image"],
        "Command": f'"{command}"', "Created": _ago(since(meta["Created"])),
        "Status": describe(state), "Ports": ports, "Names": meta["Name"], "State": state.get("Status"),
    }


def _ago(seconds: float) -> str:
    from node.engine.status import human_duration
    return f"{human_duration(seconds)} ago"

"""`inspect` and `ps`: the container's record as Docker shows it."""
from __future__ import annotations

from node.engine.records import Container, to_json
from node.engine.status import current_state, describe


def inspect_container(container: Container) -> dict:
    return _document(container, to_json(container.spec))


def list_documents(root) -> list[dict]:
    """Every container's inspect document, newest first, for `ps`. container.json is already
    Docker's JSON (records.to_json wrote it), so it is used as read: the typed round trip
    (from_json, then to_json of Config and HostConfig) was a third of `ps` with 50 containers."""
    import os

    from node.engine.records import loads_json, read_bytes
    try:  # records.all_ids without its stat of each container.json: the read below tells
        ids = [e for e in os.listdir(os.path.join(os.fspath(root), "containers")) if len(e) == 64]
    except FileNotFoundError:
        ids = []
    docs = []
    for cid in ids:
        container = _Listed(root, cid)
        try:
            meta = loads_json(read_bytes(container.dir + "/container.json"))
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict):
            docs.append(_document(container, meta))
    docs.sort(key=lambda d: d.get("Created") or "", reverse=True)
    return docs


class _Listed:
    """What `ps` needs of a Container (id, dir as a str, the state read): no pathlib. A record
    that must be reconciled (its processes are gone) becomes the real Container (``real``)."""

    __slots__ = ("root", "id", "dir")

    def __init__(self, root, cid: str) -> None:
        import os
        self.root, self.id = root, cid
        self.dir = os.path.join(os.fspath(root), "containers", cid)

    def state(self) -> dict:
        from node.engine.records import loads_json, new_state, read_bytes
        try:
            return loads_json(read_bytes(self.dir + "/state.json"))
        except FileNotFoundError:
            return new_state()

    def real(self) -> Container:
        return Container(self.root, self.id)


def _document(container: Container, meta: dict) -> dict:
    """The inspect document from container.json's contents (``meta``) and the live state."""
    state = current_state(container)
    network = state.get("Network") or {}
    host_config = meta.get("HostConfig") or {}
    mounts = [dict(m) for m in meta.get("Mounts") or []]
    d = str(container.dir)
    return {
        "Id": container.id,
        "Created": meta.get("Created", ""),
        "Path": meta.get("Path", ""),
        "Args": meta.get("Args") or [],
        "State": {
            "Status": state.get("Status"), "Running": state.get("Status") in ("running", "paused"),
            "Paused": state.get("Status") == "paused", "Restarting": state.get("Status") == "restarting",
            "OOMKilled": bool(state.get("OOMKilled")), "Dead": False, "Pid": state.get("Pid", 0),
            "ExitCode": state.get("ExitCode", 0), "Error": state.get("Error", ""),
            "StartedAt": state.get("StartedAt"), "FinishedAt": state.get("FinishedAt"),
            **({"Health": state["Health"]} if state.get("Health") else {}),
        },
        "Image": meta.get("Image", ""),
        "ResolvConfPath": d + "/resolv.conf",
        "HostnamePath": d + "/hostname",
        "HostsPath": d + "/hosts",
        "LogPath": f"{d}/{container.id}-json.log",
        "Name": "/" + meta.get("Name", ""),
        "RestartCount": state.get("RestartCount", 0),
        "Driver": meta.get("Driver", "overlay"),
        "Platform": "linux",
        "HostConfig": host_config,
        "GraphDriver": {"Name": "overlay", "Data": {
            "LowerDir": ":".join(reversed(meta.get("LayerDirs") or [])),
            "UpperDir": d + "/upper", "WorkDir": d + "/work",
            "MergedDir": d + "/bundle/rootfs"}},
        "Mounts": mounts,
        "Config": meta.get("Config") or {},
        "NetworkSettings": {
            "NetworkMode": host_config.get("NetworkMode", "none"),
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

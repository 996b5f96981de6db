"""Published ports: parse ``-p``/``-P``, pick host ports, and show them the way docker does.

A host port is taken when another container of this agent already publishes it or when some
process of the host listens on it (checked by binding it once). Random ports come from the
kernel's ephemeral range (bind to port 0), like docker-proxy's.
"""
from __future__ import annotations

import ipaddress
import _socket  # the C socket type: socket.py (its enums) cost ~3 ms of every attach

from node.network.state import ContainerNet, NetworkError, PortBinding
from oci.record import record


@record(frozen=True)  # not a dataclass: see state.py; frozen, so hashable (dict.fromkeys below)
class PortSpec:
    proto: str
    container_port: int
    host_ip: str = ""  # "" = every host address
    host_port: int = 0  # 0 = pick one

    def __init__(self, proto, container_port, host_ip="", host_port=0):
        object.__setattr__(self, "proto", proto)
        object.__setattr__(self, "container_port", container_port)
        object.__setattr__(self, "host_ip", host_ip)
        object.__setattr__(self, "host_port", host_port)


def parse_publish(text: str) -> PortSpec:
    """``[IP:][HOST_PORT:]CONTAINER_PORT[/tcp|/udp]``; ``IP::CONTAINER_PORT`` picks the port."""
    spec, _, proto = text.strip().partition("/")
    proto = proto.lower() or "tcp"
    if proto not in ("tcp", "udp"):
        raise NetworkError(f"invalid port spec {text!r}: protocol must be tcp or udp")
    host_ip, host_port, container_port = "", "", spec
    if spec.startswith("["):
        raise NetworkError(f"invalid port spec {text!r}: IPv6 host addresses are not supported")
    parts = spec.split(":")
    if len(parts) == 2:
        host_port, container_port = parts
    elif len(parts) == 3:
        host_ip, host_port, container_port = parts
    elif len(parts) > 3:
        raise NetworkError(f"invalid port spec {text!r}")
    if host_ip:
        try:
            ip = ipaddress.IPv4Address(host_ip)
        except ValueError:
            raise NetworkError(f"invalid port spec {text!r}: bad host address {host_ip!r}") from None
        host_ip = "" if ip.is_unspecified else str(ip)
    return PortSpec(proto, _port(container_port, text), host_ip,
                    _port(host_port, text) if host_port else 0)


def parse_exposed(text: str) -> PortSpec:
    """An image's ExposedPorts key ("80/tcp") as a spec with a random host port."""
    port, _, proto = text.partition("/")
    if "-" in port:
        raise NetworkError(f"exposed port ranges are not supported: {text!r}")
    return parse_publish(f"{port}/{proto or 'tcp'}")


def _port(text: str, spec: str) -> int:
    if "-" in text:
        raise NetworkError(f"invalid port spec {spec!r}: port ranges are not supported")
    try:
        value = int(text)
    except ValueError:
        raise NetworkError(f"invalid port spec {spec!r}: {text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise NetworkError(f"invalid port spec {spec!r}: port {value} out of range 1-65535")
    return value


def bind_ports(specs: list[PortSpec], others: list[ContainerNet], container_id: str) -> list[PortBinding]:
    """Host ports for ``specs``, refusing ones other containers or host processes hold."""
    taken = {(p.proto, p.host_port): p.host_ip for c in others if c.container_id != container_id
             for p in c.ports}
    bindings: list[PortBinding] = []
    seen: set[tuple[str, int]] = set()
    for spec in dict.fromkeys(specs):  # -p 80 -P with EXPOSE 80 publishes 80 once
        port = spec.host_port
        if port:
            holder = taken.get((spec.proto, port))
            if holder is not None and (not holder or not spec.host_ip or holder == spec.host_ip):
                raise NetworkError(f"Bind for {spec.host_ip or '0.0.0.0'}:{port} failed: "
                                   "port is already allocated")
            if (spec.proto, port) in seen:
                raise NetworkError(f"host port {port}/{spec.proto} is published twice")
            if not _bindable(spec.proto, spec.host_ip, port):
                raise NetworkError(f"Bind for {spec.host_ip or '0.0.0.0'}:{port} failed: "
                                   "address already in use")
        else:
            port = _pick_port(spec.proto, spec.host_ip, taken, seen)
        seen.add((spec.proto, port))
        bindings.append(PortBinding(spec.proto, spec.container_port, spec.host_ip, port))
    return bindings


def _bindable(proto: str, host_ip: str, port: int) -> bool:
    kind = _socket.SOCK_STREAM if proto == "tcp" else _socket.SOCK_DGRAM
    s = _socket.socket(_socket.AF_INET, kind)
    try:
        s.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)  # TIME_WAIT is no conflict
        try:
            s.bind((host_ip or "0.0.0.0", port))
            return True
        except OSError:
            return False
    finally:
        s.close()


def _pick_port(proto: str, host_ip: str, taken: dict, seen: set) -> int:
    kind = _socket.SOCK_STREAM if proto == "tcp" else _socket.SOCK_DGRAM
    for _ in range(64):
        s = _socket.socket(_socket.AF_INET, kind)
        try:
            s.bind((host_ip or "0.0.0.0", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if (proto, port) not in taken and (proto, port) not in seen:
            return port
    raise NetworkError("could not find a free host port")


def docker_ports(bindings: list[PortBinding], exposed: list[str] = ()) -> dict:
    """docker's NetworkSettings.Ports: {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]};
    exposed but unpublished ports map to None."""
    out: dict[str, list[dict[str, str]] | None] = {}
    for key in exposed:
        port, _, proto = key.partition("/")
        out.setdefault(f"{port}/{proto or 'tcp'}", None)
    for b in bindings:
        entry = {"HostIp": b.host_ip or "0.0.0.0", "HostPort": str(b.host_port)}
        key = f"{b.container_port}/{b.proto}"
        out[key] = (out.get(key) or []) + [entry]
    return out


def format_ps(bindings: list[PortBinding]) -> str:
    """The PORTS column of `ps`: "0.0.0.0:8080->80/tcp"."""
    return ", ".join(f"{b.host_ip or '0.0.0.0'}:{b.host_port}->{b.container_port}/{b.proto}"
                     for b in bindings)

"""Address management: pick subnets that collide with nothing, hand out addresses from them.

Pure functions over ``ipaddress`` objects; the allocations themselves are persisted in the
network's record (see state.py) by the caller, under the store lock, so an address is never
handed out twice and goes back to the pool when its container is detached.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from node.network.state import Network, NetworkError

IPv4Net = ipaddress.IPv4Network

# The default bridge tries these in order; user networks without --subnet take the first free
# one of the rest. Private ranges that home and office networks use least.
DEFAULT_BRIDGE_CANDIDATES = ("172.30.0.0/16", "172.31.0.0/16", "10.87.0.0/16", "192.168.230.0/24")
USER_POOL = (tuple(f"172.{n}.0.0/16" for n in range(18, 30))
             + tuple(f"10.{n}.0.0/16" for n in range(200, 250))
             + tuple(f"192.168.{n}.0/24" for n in range(231, 255)))


def parse_subnet(text: str) -> IPv4Net:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as e:
        raise NetworkError(f"invalid subnet {text!r}: {e}") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise NetworkError(f"invalid subnet {text!r}: only IPv4 subnets are supported")
    if str(net) != text.strip() and "/" in text:
        # 10.1.2.3/24 is almost always a typo for 10.1.2.0/24; say what we understood.
        raise NetworkError(f"invalid subnet {text!r}: host bits set (did you mean {net}?)")
    if net.prefixlen > 29:
        raise NetworkError(f"subnet {net} is too small: it needs room for a gateway and containers")
    if net.is_loopback or net.is_multicast or net.is_link_local or net.is_unspecified:
        raise NetworkError(f"subnet {net} cannot be used for containers")
    return net


def first_overlap(net: IPv4Net, taken: Iterable[tuple[IPv4Net, str]]) -> str | None:
    """The description of the first taken range that overlaps ``net``, if any."""
    for other, what in taken:
        if net.overlaps(other):
            return f"{what} ({other})"
    return None


def choose_subnet(candidates: Iterable[str], taken: list[tuple[IPv4Net, str]]) -> IPv4Net:
    for text in candidates:
        net = ipaddress.IPv4Network(text)
        if first_overlap(net, taken) is None:
            return net
    raise NetworkError("no free subnet left in the address pools: pass --subnet")


def default_gateway(net: IPv4Net) -> str:
    return str(net.network_address + 1)


def check_gateway(net: IPv4Net, gateway: str) -> str:
    try:
        gw = ipaddress.IPv4Address(gateway)
    except ValueError:
        raise NetworkError(f"invalid gateway {gateway!r}") from None
    if gw not in net or gw in (net.network_address, net.broadcast_address):
        raise NetworkError(f"gateway {gw} is not a usable address of subnet {net}")
    return str(gw)


def allocate(network: Network, container_id: str, requested: str | None = None) -> str:
    """Reserve an address of ``network`` for ``container_id`` (mutates ``network.allocations``)."""
    net = ipaddress.IPv4Network(network.subnet)
    if requested is not None:
        try:
            ip = ipaddress.IPv4Address(requested)
        except ValueError:
            raise NetworkError(f"invalid IP address {requested!r}") from None
        if ip not in net or ip in (net.network_address, net.broadcast_address):
            raise NetworkError(f"address {ip} is not in network {network.name}'s subnet {net}")
        if str(ip) == network.gateway:
            raise NetworkError(f"address {ip} is the gateway of network {network.name}")
        owner = network.allocations.get(str(ip))
        if owner is not None and owner != container_id:
            raise NetworkError(f"address {ip} is already in use on network {network.name}")
        network.allocations[str(ip)] = container_id
        return str(ip)
    # Lowest free address: predictable for people reading `inspect`, and the pool is a dict so
    # this stays cheap for the few hundred containers a node runs.
    for ip in net.hosts():
        text = str(ip)
        if text != network.gateway and text not in network.allocations:
            network.allocations[text] = container_id
            return text
    raise NetworkError(f"no free address left in network {network.name} ({net})")


def release(network: Network, container_id: str) -> list[str]:
    """Give back every address ``container_id`` holds in ``network``; returns them."""
    freed = [ip for ip, owner in network.allocations.items() if owner == container_id]
    for ip in freed:
        del network.allocations[ip]
    return freed


def mac_for(ip: str) -> str:
    """Docker's scheme: locally administered 02:42 followed by the IPv4 bytes. Deterministic,
    so a recycled address keeps its MAC and peers' ARP caches stay right."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)

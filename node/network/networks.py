"""Networks as records: the default "bridge" network and user-defined ones (create, rm, ls,
inspect). Each network owns one Linux bridge whose address is the network's gateway."""
from __future__ import annotations

import ipaddress

from node.forkguard import own_process
from node.network import firewall, ipam, links
from node.network.state import (
    DEFAULT_NETWORK, NETWORK_NAME_RE, RESERVED_NAMES, Network, NetworkError, Store,
)

DEFAULT_BRIDGE_DEVICE = "dockyard0"


def _taken_ranges(store: Store, skip: str | None = None) -> list[tuple[ipaddress.IPv4Network, str]]:
    mine = store.networks()
    own_bridges = {n.bridge for n in mine}
    taken = [(ipaddress.IPv4Network(n.subnet), f"network {n.name}") for n in mine if n.name != skip]
    return taken + links.host_networks(exclude_links=own_bridges)


def _new_network(store: Store, name: str, subnet: ipaddress.IPv4Network, gateway: str,
                 bridge: str | None = None) -> Network:
    import secrets  # here, not at the top: every attach imports this module (~6 ms)
    from datetime import datetime, timezone
    net_id = secrets.token_hex(32)
    net = Network(
        name=name, id=net_id, subnet=str(subnet), gateway=gateway,
        bridge=bridge or f"dy-{net_id[:12]}",
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    store.save_network(net)  # record first: a crash leaves a record `network rm` can clean
    @own_process  # a library's fork unwinding: the parent owns this network
    def build() -> None:
        links.ensure_bridge(net.bridge, net.gateway, subnet.prefixlen)
        firewall.apply(store)
    try:
        build()
    except BaseException:
        store.delete_network(name)
        links.delete_link(net.bridge)
        raise
    return net


def ensure_default(store: Store) -> Network:
    """The default network, created on first use with a subnet no route of the host covers."""
    net = store.network(DEFAULT_NETWORK)
    if net is not None:
        return net
    subnet = ipam.choose_subnet(ipam.DEFAULT_BRIDGE_CANDIDATES + ipam.USER_POOL, _taken_ranges(store))
    # Another agent root on this host (tests) may already own dockyard0.
    bridge = None if links.link_exists(DEFAULT_BRIDGE_DEVICE) else DEFAULT_BRIDGE_DEVICE
    return _new_network(store, DEFAULT_NETWORK, subnet, ipam.default_gateway(subnet), bridge)


def create(store: Store, name: str, subnet: str | None = None, gateway: str | None = None) -> Network:
    if not NETWORK_NAME_RE.match(name):
        raise NetworkError(f"invalid network name {name!r}: use letters, digits, '_', '.', '-'")
    if name in RESERVED_NAMES or name == DEFAULT_NETWORK:
        raise NetworkError(f"network name {name!r} is reserved")
    with store.locked():
        if store.network(name) is not None:
            raise NetworkError(f"network with name {name} already exists")
        taken = _taken_ranges(store)
        if subnet:
            net = ipam.parse_subnet(subnet)
            clash = ipam.first_overlap(net, taken)
            if clash:
                raise NetworkError(f"subnet {net} overlaps {clash}: choose another --subnet")
        else:
            if gateway:
                raise NetworkError("--gateway needs --subnet")
            net = ipam.choose_subnet(ipam.USER_POOL, taken)
        gw = ipam.check_gateway(net, gateway) if gateway else ipam.default_gateway(net)
        return _new_network(store, name, net, gw)


def find(store: Store, ref: str, create_default: bool = True) -> Network:
    """A network by name, or by a unique prefix of its id (the default one made on first use;
    callers that may create it hold the store lock)."""
    net = store.network(ref)
    if net is not None:
        return net
    if ref == DEFAULT_NETWORK and create_default:
        return ensure_default(store)
    matches = [n for n in store.networks() if len(ref) >= 3 and n.id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    raise NetworkError(f"network {ref} not found")


def remove(store: Store, ref: str) -> Network:
    with store.locked():
        net = find(store, ref)
        if net.name == DEFAULT_NETWORK:
            raise NetworkError(f"{DEFAULT_NETWORK} is a pre-defined network and cannot be removed")
        users = [c.name for c in store.containers() if c.endpoint(net.name)]
        if users or net.allocations:
            raise NetworkError(f"network {net.name} has active endpoints: {', '.join(users) or '?'}")
        firewall.apply(store, without=frozenset({net.name}))
        links.delete_link(net.bridge)
        store.delete_network(net.name)  # the record last: a crash before leaves one to retry
        return net


def inspect(store: Store, net: Network) -> dict:
    containers = {}
    for c in store.containers():
        ep = c.endpoint(net.name)
        if ep:
            containers[c.container_id] = {
                "Name": c.name, "IPv4Address": f"{ep.ip}/{ep.prefixlen}",
                "MacAddress": ep.mac, "Aliases": ep.aliases,
            }
    return {
        "Name": net.name, "Id": net.id, "Created": net.created, "Driver": "bridge",
        "Scope": "local",
        "IPAM": {"Driver": "default", "Config": [{"Subnet": net.subnet, "Gateway": net.gateway}]},
        "Containers": containers,
        "Options": {"com.docker.network.bridge.name": net.bridge},
    }

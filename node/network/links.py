"""The bridge driver's kernel side, through pyroute2: network namespaces, bridges, veth pairs.

Every function does one idempotent thing so that attach, detach and reclaim can call them in
any state the machine was left in (a crash between two steps included).

pyroute2 0.9 notes: ``IPRoute(netns=PATH)`` runs the RTNL API inside the namespace bound at
PATH (an absolute path works as well as a name under /var/run/netns); ``netns.create(PATH)``
makes the directory a shared mount point (as iproute2 does) so that removing the bind mount
propagates to mount namespaces created since.

pyroute2 is imported on first use (it costs ~110 ms): reclaim() runs at the start of every agent
command and must stay cheap when it finds nothing to do.
"""
from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
from pathlib import Path

from node.forkguard import own_process

NETNS_DIR = Path("/run/dockyard/netns")


# network namespaces --------------------------------------------------------------------------
def IPRoute(**kwargs):  # noqa: N802 - stands in for the class
    """pyroute2's IPRoute; with netns= it forks a child to open the socket inside the namespace,
    so the caller's Python signal handlers are parked meanwhile (state.parked_signal_handlers)."""
    from pyroute2 import IPRoute as _IPRoute

    from node.network.state import parked_signal_handlers
    if "netns" not in kwargs:
        return _IPRoute(**kwargs)
    with parked_signal_handlers():
        return _IPRoute(**kwargs)


def _netns():
    from pyroute2 import netns
    return netns


def create_netns(path: str) -> None:
    """A new network namespace bound at ``path``, loopback up."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if is_netns(path):
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a plain file left by a crash between create and bind
    from node.network.state import parked_signal_handlers
    with parked_signal_handlers():  # pyroute2 forks a child for this
        _netns().create(path)
    with IPRoute(netns=path) as ns:
        ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")


def remove_netns(path: str) -> None:
    """Unbind and delete the namespace file. Its veths die with the namespace once no process
    (the container) holds it any more."""
    if is_netns(path):
        _netns().remove(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def is_netns(path: str) -> bool:
    try:
        return os.path.ismount(path) and os.stat(path).st_ino != 0 and _is_nsfs(path)
    except OSError:
        return False


def _is_nsfs(path: str) -> bool:
    # A bound namespace has the nsfs device of /proc/self/ns/net.
    return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev


def netns_inodes_in_use() -> set[int]:
    """Inodes of every network namespace some process is in (one pass over /proc)."""
    inodes: set[int] = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                inodes.add(os.stat(f"/proc/{entry.name}/ns/net").st_ino)
    return inodes


# bridges -------------------------------------------------------------------------------------
def ensure_bridge(name: str, gateway: str, prefixlen: int) -> None:
    """The bridge exists, carries the gateway address and is up; forwarding is on."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            ipr.link("add", ifname=name, kind="bridge")
            found = ipr.link_lookup(ifname=name)
        index = found[0]
        have = {(a.get("address"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=2)}
        if (gateway, prefixlen) not in have:
            with _tolerate(errno.EEXIST):
                ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
        ipr.link("set", index=index, state="up")
    _sysctl("net/ipv4/ip_forward", "1")
    # Lets connections to 127.0.0.1:HOSTPORT be DNATed out of this bridge (see firewall.py).
    _sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")


def delete_link(name: str) -> None:
    with IPRoute() as ipr, _tolerate(errno.ENODEV):
        found = ipr.link_lookup(ifname=name)
        if found:
            ipr.link("del", index=found[0])


def link_exists(name: str) -> bool:
    with IPRoute() as ipr:
        return bool(ipr.link_lookup(ifname=name))


# veth endpoints ------------------------------------------------------------------------------
def create_endpoint(
    *, netns_path: str, bridge: str, host_veth: str, ifname: str, ip: str, prefixlen: int,
    gateway: str, mac: str, default_route: bool,
) -> None:
    """veth pair: ``host_veth`` on ``bridge``; its peer moved into the namespace as ``ifname``
    with ``ip``, ``mac`` and (for the first network) the default route via ``gateway``."""
    peer = "dyp" + host_veth[3:]  # temporary name in the host namespace, same length
    delete_link(host_veth)  # leftovers of a crashed attach
    delete_link(peer)
    with IPRoute() as ipr:
        ipr.link("add", ifname=host_veth, kind="veth", peer={"ifname": peer})

        @own_process
        def wire() -> None:
            host_index = ipr.link_lookup(ifname=host_veth)[0]
            bridge_index = ipr.link_lookup(ifname=bridge)[0]
            ipr.link("set", index=host_index, master=bridge_index, state="up")
            # Hairpin lets a container reach its own published port through the host address.
            ipr.brport("set", index=host_index, mode=1)  # IFLA_BRPORT_MODE 1 = hairpin
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                ipr.link("set", index=ipr.link_lookup(ifname=peer)[0], net_ns_fd=fd)
            finally:
                os.close(fd)
        try:
            wire()
        except BaseException:
            with contextlib.suppress(Exception):
                ipr.link("del", index=ipr.link_lookup(ifname=host_veth)[0])
            raise
    with IPRoute(netns=netns_path) as ns:
        index = ns.link_lookup(ifname=peer)[0]
        ns.link("set", index=index, ifname=ifname, address=mac)
        ns.addr("add", index=index, address=ip, prefixlen=prefixlen)
        ns.link("set", index=index, state="up")
        if default_route:
            ns.route("add", dst="0.0.0.0/0", gateway=gateway)


def container_ifnames(netns_path: str) -> set[str]:
    with IPRoute(netns=netns_path) as ns:
        return {link.get("ifname") for link in ns.get_links()}


def remove_endpoint_in_netns(netns_path: str, ifname: str) -> None:
    """For `network disconnect`: deleting one end of a veth deletes both."""
    if not is_netns(netns_path):
        return
    with IPRoute(netns=netns_path) as ns, _tolerate(errno.ENODEV):
        found = ns.link_lookup(ifname=ifname)
        if found:
            ns.link("del", index=found[0])


# routes, for overlap checks ------------------------------------------------------------------
def host_networks(exclude_links: set[str] = frozenset()) -> list[tuple[ipaddress.IPv4Network, str]]:
    """IPv4 ranges the host already routes (routes and interface subnets), with a description;
    the default route is left out (everything overlaps it)."""
    taken: list[tuple[ipaddress.IPv4Network, str]] = []
    with IPRoute() as ipr:
        names = {link["index"]: link.get("ifname") for link in ipr.get_links()}
        for route in ipr.get_routes(family=2, table=254):
            dst, plen = route.get("dst"), route["dst_len"]
            dev = names.get(route.get("oif"), "?")
            if dst is None or plen == 0 or dev in exclude_links:
                continue
            taken.append((ipaddress.IPv4Network(f"{dst}/{plen}", strict=False), f"route via {dev}"))
        for addr in ipr.get_addr(family=2):
            dev = names.get(addr["index"], "?")
            if dev in exclude_links or dev == "lo":
                continue
            net = ipaddress.IPv4Network(f"{addr.get('address')}/{addr['prefixlen']}", strict=False)
            taken.append((net, f"address on {dev}"))
    return taken


def _sysctl(key: str, value: str) -> None:
    path = Path("/proc/sys") / key
    with contextlib.suppress(FileNotFoundError):
        if path.read_text().strip() != value:
            path.write_text(value)


@contextlib.contextmanager
def _tolerate(*codes: int):
    from pyroute2.netlink.exceptions import NetlinkError
    try:
        yield
    except NetlinkError as e:
        if e.code not in codes:
            raise

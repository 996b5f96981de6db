"""The network side's contract with the engine: attach, detach, reclaim (and connect/disconnect).

attach() gives a container a network namespace bound at ``Attachment.netns_path``; the engine
puts ``{"type": "network", "path": netns_path}`` in config.json so the builtin runtime, runc and
crun all join it. Order of work, chosen so that a crash at any step is undone by reclaim():
record the address and the container's record first, then build kernel objects (bridge, netns,
veth), then rules, then peers' hosts files. detach() undoes it in reverse and is idempotent.

What stays after the last detach (a change from "an idle node has no kernel state of ours"):
the default bridge, its subnet and the nftables table, as docker0 stays — making and removing
them on every `run --rm` was most of its cost. purge() is the one way to remove them; test and
bench roots call it before they are deleted. A veth whose namespace nobody is in any more is left
for the kernel to delete with the namespace.
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from node.forkguard import own_process
from node.network import firewall, hosts, ipam, links, networks, ports
from node.network.state import (
    ContainerNet, Endpoint, Network, NetworkError, PortBinding, Store, sha256,
)
from oci.record import MISSING, Factory, record

__all__ = ["Attachment", "NetworkError", "attach", "detach", "reclaim", "connect", "disconnect",
           "lookup", "netns_path_for"]

RECLAIM_GRACE_SECONDS = 30.0  # an attachment this young may still be waiting for its process


@record  # not a dataclass: see state.py
class Attachment:
    container_id: str
    netns_path: str
    network: str
    ip_address: str
    prefixlen: int
    gateway: str
    mac: str
    ports: dict
    hosts: list[tuple[str, list[str]]]
    resolv_conf: str
    bindings: list[PortBinding] = Factory(list)
    endpoints: list[Endpoint] = Factory(list)
    network_ids: dict[str, str] = Factory(dict)

    def __init__(self, container_id, netns_path, network, ip_address, prefixlen, gateway, mac,
                 ports, hosts, resolv_conf, bindings=MISSING, endpoints=MISSING,
                 network_ids=MISSING):
        self.container_id = container_id
        self.netns_path = netns_path
        self.network = network
        self.ip_address = ip_address
        self.prefixlen = prefixlen
        self.gateway = gateway
        self.mac = mac
        self.ports = ports
        self.hosts = hosts
        self.resolv_conf = resolv_conf
        self.bindings = [] if bindings is MISSING else bindings
        self.endpoints = [] if endpoints is MISSING else endpoints
        self.network_ids = {} if network_ids is MISSING else network_ids

    @property
    def hosts_text(self) -> str:
        """The whole /etc/hosts file (localhost lines included)."""
        return hosts.hosts_text(self.hosts)

    def to_json(self) -> dict:
        """docker's NetworkSettings shape."""
        return {
            "SandboxKey": self.netns_path,
            "Ports": self.ports,
            "IPAddress": self.ip_address,
            "IPPrefixLen": self.prefixlen,
            "Gateway": self.gateway,
            "MacAddress": self.mac,
            "Networks": {
                ep.network: {
                    "NetworkID": self.network_ids.get(ep.network, ""),
                    "IPAddress": ep.ip, "IPPrefixLen": ep.prefixlen, "Gateway": ep.gateway,
                    "MacAddress": ep.mac, "Aliases": ep.aliases,
                }
                for ep in self.endpoints
            },
        }


def netns_path_for(root: Path | str, container_id: str) -> str:
    store = Store(root)
    return str(links.NETNS_DIR / f"{store.root_key}-{container_id}")


def _host_veth(store: Store, container_id: str, network: str) -> str:
    digest = sha256(f"{store.root_key}/{container_id}/{network}".encode()).hexdigest()
    return "dyv" + digest[:12]  # 15 characters: the kernel's limit for interface names


def attach(root: Path, container_id: str, container_name: str, network: str, publish: list[str],
           publish_all: bool, exposed_ports: list[str], aliases: list[str], ip: str | None,
           hostname: str) -> Attachment:
    store = Store(root)
    specs = [ports.parse_publish(p) for p in publish]
    if publish_all:
        specs += [ports.parse_exposed(p) for p in exposed_ports]
    with store.locked():
        stale = store.container(container_id)
        if stale is not None:  # a previous run that was never detached
            _detach_locked(store, stale)
        net = networks.find(store, network)
        if not net.user_defined and ip:
            raise NetworkError("user specified IP address is supported on user defined networks only")
        if not net.user_defined and aliases:
            raise NetworkError("network-scoped aliases are supported only on user defined networks")
        bindings = ports.bind_ports(specs, store.containers(), container_id)
        c = ContainerNet(container_id=container_id, name=container_name,
                         hostname=hostname or container_id[:12],
                         netns_path=netns_path_for(root, container_id), created=time.time(),
                         ports=bindings)
        @own_process  # a library's fork unwinding: the parent owns this attach
        def wire() -> None:
            links.create_netns(c.netns_path, loopback=False)  # create_endpoint brings lo up
            pending = []  # the rules' nft runs while the veth is made: they need only the records
            try:
                _add_endpoint(store, c, net, aliases, ip,
                              records_saved=lambda: pending.append(
                                  firewall.start_apply(store, added=container_id)))
            except BaseException:
                if pending and pending[0] is not None:
                    with contextlib.suppress(Exception):
                        pending[0].finish()  # reaped before detach re-applies the table
                raise
            if pending[0] is not None:
                pending[0].finish()
            _refresh_hosts(store, c)
        try:
            wire()
        except BaseException:
            with contextlib.suppress(Exception):
                _detach_locked(store, store.container(container_id) or c)
            raise
        return _attachment(store, c, exposed_ports)


def _add_endpoint(store: Store, c: ContainerNet, net: Network, aliases: list[str],
                  ip: str | None, records_saved=None) -> Endpoint:
    address = ipam.allocate(net, c.container_id, ip)
    store.save_network(net)
    prefixlen = int(net.subnet.split("/")[1])
    used = links.container_ifnames(c.netns_path) if c.endpoints else set()
    ifname = next(f"eth{i}" for i in range(64) if f"eth{i}" not in used)
    ep = Endpoint(network=net.name, ifname=ifname,
                  host_veth=_host_veth(store, c.container_id, net.name), ip=address,
                  prefixlen=prefixlen, gateway=net.gateway, mac=ipam.mac_for(address),
                  aliases=[a for a in dict.fromkeys(aliases) if a])
    c.endpoints.append(ep)
    store.save_container(c)  # saved before the kernel work so reclaim/detach can undo it
    if records_saved is not None:
        records_saved()
    links.ensure_bridge(net.bridge, net.gateway, prefixlen)
    links.create_endpoint(netns_path=c.netns_path, bridge=net.bridge, host_veth=ep.host_veth,
                          ifname=ep.ifname, ip=ep.ip, prefixlen=prefixlen, gateway=net.gateway,
                          mac=ep.mac, default_route=len(c.endpoints) == 1)
    return ep


def detach(root: Path, container_id: str) -> None:
    """Remove everything attach made for ``container_id``; doing it twice is harmless."""
    store = Store(root)
    if not store.dir.exists():
        return
    with store.locked():
        c = store.container(container_id)
        if c is not None:
            _detach_locked(store, c)
        else:  # a crash between creating the netns and saving the record
            links.remove_netns(netns_path_for(root, container_id))


def _detach_locked(store: Store, c: ContainerNet) -> None:
    peers = hosts.peers_of(c, _networks_by_name(store), store.containers())
    store.delete_container(c.container_id)
    if _netns_held(c.netns_path):
        # Someone (a process that outlived the container, an nsenter) is still in the namespace:
        # cut its veths now so that nothing there keeps an address that is about to be reused.
        for ep in c.endpoints:
            links.delete_link(ep.host_veth)
    # Otherwise the veths are left to the kernel: unbinding the namespace below drops its last
    # reference, and the kernel deletes every device in it, each veth pair with both its ends,
    # in its own worker instead of making us wait (an `ip link del` blocks ~25 ms for an RCU
    # grace period). No process is left in there to use the address meanwhile.
    for net in store.networks():
        if ipam.release(net, c.container_id):
            store.save_network(net)
    # The default bridge stays when idle, like docker0: making and removing it and its nft table
    # on every `run --rm` cost ~86 ms of kernel waits (bench/results/PROFILE.md section 10).
    # purge() removes it. Under the lock, so no freed address is handed out before the rules follow.
    firewall.apply(store)
    links.remove_netns(c.netns_path)
    _refresh_peer_hosts(store, peers)


def _netns_held(path: str) -> bool:
    """Whether some process is in the namespace bound at ``path`` (one pass over /proc)."""
    if not links.is_netns(path):
        return False
    try:
        inode = os.stat(path).st_ino
    except OSError:
        return False
    return inode in links.netns_inodes_in_use()


def reclaim(root: Path, grace: float = RECLAIM_GRACE_SECONDS) -> list[str]:
    """Detach containers whose namespace is gone or has had no process for ``grace`` seconds
    (crashed, killed, or a reboot). Returns the reclaimed container ids. Costs one directory
    listing when nothing is attached."""
    store = Store(root)
    if not store.dir.exists():
        return []
    if not store.has_containers():
        if _netns_files(store):
            with store.locked():
                _remove_orphan_netns(store)
        return []
    reclaimed: list[str] = []
    with store.locked():
        _remove_orphan_netns(store)
        in_use: set[int] | None = None
        now = time.time()
        for c in store.containers():
            if links.is_netns(c.netns_path):
                if now - c.created < grace:
                    continue
                if in_use is None:
                    in_use = links.netns_inodes_in_use()
                if os.stat(c.netns_path).st_ino in in_use:
                    continue
            _detach_locked(store, c)
            reclaimed.append(c.container_id)
    return reclaimed


def _netns_files(store: Store) -> list[str]:
    prefix = f"{store.root_key}-"
    try:
        return [n for n in os.listdir(links.NETNS_DIR) if n.startswith(prefix)]
    except FileNotFoundError:
        return []


def _remove_orphan_netns(store: Store) -> None:
    """Namespace files of this root without a record: an attach killed between creating the
    namespace and saving the record (attach holds the lock over both, so none is in progress).
    The caller holds the store lock."""
    prefix = f"{store.root_key}-"
    for name in _netns_files(store):
        with contextlib.suppress(NetworkError):
            if store.container(name[len(prefix):]) is None:
                links.remove_netns(str(links.NETNS_DIR / name))


def lookup(root: Path, ref: str) -> ContainerNet | None:
    """An attached container by id, unique id prefix or name."""
    store = Store(root)
    if not store.dir.exists():
        return None
    everyone = store.containers()
    for c in everyone:
        if ref in (c.container_id, c.name):
            return c
    matches = [c for c in everyone if c.container_id.startswith(ref)]
    return matches[0] if len(matches) == 1 else None


def connect(root: Path, container_ref: str, network: str, aliases: list[str] = (),
            ip: str | None = None) -> Attachment:
    """Add a network to a running (attached) container: a new ethN in its namespace."""
    store = Store(root)
    with store.locked():
        c = lookup(root, container_ref)
        if c is None:
            raise NetworkError(f"container {container_ref} is not running on a bridge network")
        net = networks.find(store, network)
        if c.endpoint(net.name):
            raise NetworkError(f"container {c.name} is already connected to network {net.name}")
        if not net.user_defined and (ip or aliases):
            raise NetworkError("--ip and --alias are supported only on user defined networks")
        try:
            own_process(_add_endpoint)(store, c, net, list(aliases), ip)
        except BaseException:
            _drop_endpoint(store, c, net.name)
            raise
        firewall.apply(store)
        _refresh_hosts(store, c)
        return _attachment(store, c, [])


def disconnect(root: Path, container_ref: str, network: str) -> None:
    store = Store(root)
    with store.locked():
        c = lookup(root, container_ref)
        if c is None:
            raise NetworkError(f"container {container_ref} is not running on a bridge network")
        net = networks.find(store, network)
        if not c.endpoint(net.name):
            raise NetworkError(f"container {c.name} is not connected to network {net.name}")
        peers = hosts.peers_of(c, _networks_by_name(store), store.containers())
        _drop_endpoint(store, c, net.name)
        firewall.apply(store)
        _refresh_hosts(store, c, extra_peers=peers)


def _drop_endpoint(store: Store, c: ContainerNet, network: str) -> None:
    ep = c.endpoint(network)
    if ep is not None:
        links.remove_endpoint_in_netns(c.netns_path, ep.ifname)
        links.delete_link(ep.host_veth)
        c.endpoints.remove(ep)
        store.save_container(c)
    net = store.network(network)
    if net is not None and ipam.release(net, c.container_id):
        store.save_network(net)


def _networks_by_name(store: Store) -> dict[str, Network]:
    return {n.name: n for n in store.networks()}


def _refresh_hosts(store: Store, c: ContainerNet, extra_peers: list[ContainerNet] = ()) -> None:
    nets, everyone = _networks_by_name(store), store.containers()
    hosts.rewrite_hosts(store.root, c, nets, everyone)
    _refresh_peer_hosts(store, [*hosts.peers_of(c, nets, everyone), *extra_peers])


def _refresh_peer_hosts(store: Store, peers: list[ContainerNet]) -> None:
    nets, everyone = _networks_by_name(store), store.containers()
    current = {c.container_id: c for c in everyone}
    for peer in {p.container_id: p for p in peers}.values():
        if peer.container_id in current:
            hosts.rewrite_hosts(store.root, current[peer.container_id], nets, everyone)


def _attachment(store: Store, c: ContainerNet, exposed: list[str]) -> Attachment:
    nets = _networks_by_name(store)
    primary = c.endpoints[0]
    return Attachment(
        container_id=c.container_id, netns_path=c.netns_path, network=primary.network,
        ip_address=primary.ip, prefixlen=primary.prefixlen, gateway=primary.gateway,
        mac=primary.mac, ports=ports.docker_ports(c.ports, exposed),
        hosts=hosts.hosts_entries(c, nets, store.containers()),
        resolv_conf=hosts.resolv_conf_text(), bindings=list(c.ports),
        endpoints=list(c.endpoints), network_ids={n: nets[n].id for n in nets},
    )


def attachment_of(root: Path, container_id: str) -> Attachment | None:
    """The current attachment of a container (for inspect, ps and `port`), if attached."""
    store = Store(root)
    c = store.container(container_id) if store.dir.exists() else None
    if c is None or not c.endpoints:
        return None
    return _attachment(store, c, [])


def purge(root: Path) -> None:
    """Remove every network object of this agent root: attachments, bridges (the default one
    included: nothing else removes it), the nftables table. Every test root and bench root that
    ran a container on a bridge network calls it before deleting the root, else the bridge, its
    subnet and the table stay on the host."""
    store = Store(root)
    if not store.dir.exists():
        return
    with store.locked():
        for c in store.containers():
            _detach_locked(store, c)
        doomed = store.networks()
        firewall.apply(store, without=frozenset(n.name for n in doomed), force=True)
        for net in doomed:
            links.delete_link(net.bridge)
            store.delete_network(net.name)


def rename(root: Path, container_id: str, new_name: str) -> None:
    """A renamed container answers to its new name on its user networks (and no longer to the
    old one): its record and the hosts files of it and its peers are rewritten."""
    store = Store(root)
    if not store.dir.exists():
        return
    with store.locked():
        c = store.container(container_id)
        if c is None:
            return
        c.name = new_name
        store.save_container(c)
        _refresh_hosts(store, c)

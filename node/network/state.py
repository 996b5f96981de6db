"""What the network side remembers between agent commands, on disk under ``<root>/network/``.

The agent is not a daemon: every command is a new process, so every fact that a later command
needs (which address belongs to whom, which host port is published where) lives in a file::

    <root>/network/
        lock                      flock held by every command that changes anything below
        networks/<name>.json      one network: id, subnet, gateway, bridge device, and its IPAM
                                  allocations {ip: container_id} (the pool's single source of truth)
        endpoints/<id>.json       one attached container: netns path, name, hostname, and its
                                  endpoints (one per network: veth, ifname, ip, mac, aliases)
                                  and published ports

Files are replaced atomically (write to a temporary file, fsync, rename), so a crash leaves
either the old or the new record, never half of one. Kernel objects (bridges, veths, netns
files, nftables rules) are derived from these records; ``reclaim`` repairs the difference.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import threading
from pathlib import Path
from collections.abc import Iterator

from node.atomic import write_json
from oci.record import MISSING, Factory, record

try:  # hashlib would load OpenSSL (libcrypto, openssl.cnf): 5-20 ms in every attach's monitor
    from _sha256 import sha256
except ImportError:  # Python 3.12+ (_sha2), or a build without the builtin module
    try:
        from _sha2 import sha256
    except ImportError:
        from hashlib import sha256

NETWORK_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
DEFAULT_NETWORK = "bridge"
# Names with a special meaning for --network; they can never be user-defined networks.
RESERVED_NAMES = {"none", "host", "default", "container"}


class NetworkError(Exception):
    """A network operation that cannot be done, with a message fit for the user."""


# The records below are oci.record classes (slots, equality, repr) with their __init__ and
# to_dict written out: not dataclasses, whose import (inspect, ast, dis, tokenize) cost every
# attach 12-26 ms in the monitor. to_dict is what dataclasses.asdict gave (same JSON on disk).

@record
class Network:
    name: str
    id: str
    subnet: str
    gateway: str
    bridge: str
    created: str
    allocations: dict[str, str] = Factory(dict)  # ip -> container id

    def __init__(self, name, id, subnet, gateway, bridge, created, allocations=MISSING):  # noqa: A002
        self.name = name
        self.id = id
        self.subnet = subnet
        self.gateway = gateway
        self.bridge = bridge
        self.created = created
        self.allocations = {} if allocations is MISSING else allocations

    @property
    def user_defined(self) -> bool:
        return self.name != DEFAULT_NETWORK

    def to_dict(self) -> dict:
        return {"name": self.name, "id": self.id, "subnet": self.subnet, "gateway": self.gateway,
                "bridge": self.bridge, "created": self.created,
                "allocations": dict(self.allocations)}


@record
class Endpoint:
    network: str
    ifname: str  # inside the container: eth0, eth1...
    host_veth: str  # on the host, enslaved to the network's bridge
    ip: str
    prefixlen: int
    gateway: str
    mac: str
    aliases: list[str] = Factory(list)

    def __init__(self, network, ifname, host_veth, ip, prefixlen, gateway, mac, aliases=MISSING):
        self.network = network
        self.ifname = ifname
        self.host_veth = host_veth
        self.ip = ip
        self.prefixlen = prefixlen
        self.gateway = gateway
        self.mac = mac
        self.aliases = [] if aliases is MISSING else aliases

    def to_dict(self) -> dict:
        return {"network": self.network, "ifname": self.ifname, "host_veth": self.host_veth,
                "ip": self.ip, "prefixlen": self.prefixlen, "gateway": self.gateway,
                "mac": self.mac, "aliases": list(self.aliases)}


@record
class PortBinding:
    proto: str  # "tcp" | "udp"
    container_port: int
    host_ip: str  # "" means every address of the host
    host_port: int

    def __init__(self, proto, container_port, host_ip, host_port):
        self.proto = proto
        self.container_port = container_port
        self.host_ip = host_ip
        self.host_port = host_port

    def to_dict(self) -> dict:
        return {"proto": self.proto, "container_port": self.container_port,
                "host_ip": self.host_ip, "host_port": self.host_port}


@record
class ContainerNet:
    container_id: str
    name: str
    hostname: str
    netns_path: str
    created: float
    endpoints: list[Endpoint] = Factory(list)
    ports: list[PortBinding] = Factory(list)

    def __init__(self, container_id, name, hostname, netns_path, created, endpoints=MISSING,
                 ports=MISSING):
        self.container_id = container_id
        self.name = name
        self.hostname = hostname
        self.netns_path = netns_path
        self.created = created
        self.endpoints = [] if endpoints is MISSING else endpoints
        self.ports = [] if ports is MISSING else ports

    def endpoint(self, network: str) -> Endpoint | None:
        return next((e for e in self.endpoints if e.network == network), None)

    def to_dict(self) -> dict:
        return {"container_id": self.container_id, "name": self.name, "hostname": self.hostname,
                "netns_path": self.netns_path, "created": self.created,
                "endpoints": [e.to_dict() for e in self.endpoints],
                "ports": [p.to_dict() for p in self.ports]}


class Store:
    """Reads and writes the records above; callers hold ``locked()`` around read-modify-write."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.dir = self.root / "network"
        self.networks_dir = self.dir / "networks"
        self.endpoints_dir = self.dir / "endpoints"

    # A short key for everything global on the host (netns files, nftables table) so that two
    # agents with different roots (tests do this) never touch each other's kernel objects.
    @property
    def root_key(self) -> str:
        return sha256(str(self.root.resolve()).encode()).hexdigest()[:10]

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The store lock (flock), held over every read-modify-write of records and kernel state.

        pyroute2 forks helper children (to create a namespace, to open a socket inside one) while
        we hold it. Such a child must never run the caller's Python code: a signal handler the
        caller installed (pytest's, the monitor's) would raise in the child, unwind through our
        cleanup and the engine's, and the child would wait for this very lock while its parent
        waits for the child. So, while the lock is held, Python-level handlers of the terminating
        signals are parked at SIG_DFL (a child just dies), and a forked child that reaches this
        lock anyway exits at once."""
        global _lock_owner
        if _lock_owner is not None:
            if _lock_owner[0] != os.getpid():
                os._exit(70)  # a fork of the lock holder unwinding into our code: stop here
            if _lock_owner[1] == threading.get_ident():
                raise RuntimeError("the network store lock is not reentrant")
        self.networks_dir.mkdir(parents=True, exist_ok=True)
        self.endpoints_dir.mkdir(parents=True, exist_ok=True)
        with _threads_of_this_process:  # flock would not tell two threads apart
            fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            parked = _park_signal_handlers()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                _lock_owner = (os.getpid(), threading.get_ident())
                yield
            finally:
                _lock_owner = None
                os.close(fd)
                _restore_signal_handlers(parked)

    # networks ---------------------------------------------------------------------------
    def networks(self) -> list[Network]:
        return [self._load_network(p) for p in sorted(self._json_files(self.networks_dir))]

    def network(self, name: str) -> Network | None:
        if not NETWORK_NAME_RE.match(name):
            return None
        path = self.networks_dir / f"{name}.json"
        return self._load_network(path) if path.exists() else None

    def save_network(self, net: Network) -> None:
        _write_json(self.networks_dir / f"{net.name}.json", net.to_dict())

    def delete_network(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.networks_dir / f"{name}.json").unlink()

    # containers -------------------------------------------------------------------------
    def containers(self) -> list[ContainerNet]:
        return [self._load_container(p) for p in sorted(self._json_files(self.endpoints_dir))]

    def has_containers(self) -> bool:
        return any(self._json_files(self.endpoints_dir))

    def container(self, container_id: str) -> ContainerNet | None:
        path = self._container_path(container_id)
        return self._load_container(path) if path.exists() else None

    def save_container(self, c: ContainerNet) -> None:
        _write_json(self._container_path(c.container_id), c.to_dict())

    def delete_container(self, container_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._container_path(container_id).unlink()

    def _container_path(self, container_id: str) -> Path:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", container_id):
            raise NetworkError(f"invalid container id {container_id!r}")
        return self.endpoints_dir / f"{container_id}.json"

    @staticmethod
    def _json_files(directory: Path) -> Iterator[Path]:
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return iter(())
        return (Path(e.path) for e in entries if e.name.endswith(".json"))

    @staticmethod
    def _load_network(path: Path) -> Network:
        return Network(**json.loads(path.read_text()))

    @staticmethod
    def _load_container(path: Path) -> ContainerNet:
        raw = json.loads(path.read_text())
        raw["endpoints"] = [Endpoint(**e) for e in raw.get("endpoints", [])]
        raw["ports"] = [PortBinding(**p) for p in raw.get("ports", [])]
        return ContainerNet(**raw)


_lock_owner: tuple[int, int] | None = None  # (pid, thread) holding the store lock
_threads_of_this_process = threading.Lock()
_PARKED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
                   signal.SIGUSR1, signal.SIGUSR2)


@contextlib.contextmanager
def parked_signal_handlers() -> Iterator[None]:
    """Around a library call that forks a helper child and later SIGTERMs it (pyroute2 does):
    the child must die by default, never run the caller's Python handler (see Store.locked)."""
    parked = _park_signal_handlers()
    try:
        yield
    finally:
        _restore_signal_handlers(parked)


def _park_signal_handlers() -> dict:
    if threading.current_thread() is not threading.main_thread():
        return {}  # only the main thread may set handlers; other threads' forks are rare here
    parked = {}
    for sig in _PARKED_SIGNALS:
        handler = signal.getsignal(sig)
        if callable(handler):
            parked[sig] = signal.signal(sig, signal.SIG_DFL)
    return parked


def _restore_signal_handlers(parked: dict) -> None:
    for sig, handler in parked.items():
        signal.signal(sig, handler)


def _write_json(path: Path, data: object) -> None:
    write_json(path, data, durable=True, indent=2, sort_keys=True)

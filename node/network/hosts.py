"""Name resolution: /etc/hosts and /etc/resolv.conf for containers.

Why hosts files and no DNS server: the agent is not a daemon, and an embedded DNS server
(Docker's 127.0.0.11) would need a process per network namespace, supervised, restarted after
a crash, and reachable at a loopback address inside every container. A hosts file needs no
process at all: every libc and busybox reads it, and resolution keeps working when the agent
is not running. The price is that the files must be rewritten when a peer comes or goes; that
happens under the store lock on attach and detach, for every container that shares a
user-defined network with the one that changed.

Agreement with the engine: the engine keeps the container's hosts file at
``<root>/containers/<id>/hosts`` and bind-mounts it on /etc/hosts. Because a bind mount pins the
inode, these files are rewritten in place (never replaced by rename).
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from node.network.state import ContainerNet, Network

HOSTS_HEADER = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)
FALLBACK_NAMESERVERS = ("8.8.8.8", "8.8.4.4")  # docker's choice when the host only has loopback


def hosts_entries(c: ContainerNet, networks: dict[str, Network],
                  everyone: list[ContainerNet]) -> list[tuple[str, list[str]]]:
    """(ip, names) lines for ``c``: itself, then on user-defined networks each peer by name and
    alias (docker resolves peers only on user-defined networks, not on the default bridge)."""
    entries: list[tuple[str, list[str]]] = []
    for ep in c.endpoints:
        names = [c.hostname]
        net = networks.get(ep.network)
        if net is not None and net.user_defined:
            names += [c.name, *ep.aliases]
        entries.append((ep.ip, _unique(names)))
    for ep in c.endpoints:
        net = networks.get(ep.network)
        if net is None or not net.user_defined:
            continue
        for peer in everyone:
            if peer.container_id == c.container_id:
                continue
            peer_ep = peer.endpoint(ep.network)
            if peer_ep is not None:
                entries.append((peer_ep.ip, _unique([peer.name, *peer_ep.aliases])))
    return entries


def hosts_text(entries: list[tuple[str, list[str]]]) -> str:
    return HOSTS_HEADER + "".join(f"{ip}\t{' '.join(names)}\n" for ip, names in entries)


def resolv_conf_text(host_resolv: Path = Path("/etc/resolv.conf")) -> str:
    """The host's resolver settings minus loopback nameservers, which would point at the
    container's own loopback (docker does the same)."""
    try:
        lines = host_resolv.read_text().splitlines()
    except OSError:
        lines = []
    kept, servers = [], 0
    for line in lines:
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver":
            if len(words) < 2 or words[1].startswith("127.") or words[1] == "::1":
                continue
            servers += 1
        if words[0] in ("nameserver", "search", "domain", "options"):
            kept.append(" ".join(words))
    if servers == 0:
        kept = [f"nameserver {ns}" for ns in FALLBACK_NAMESERVERS] + kept
    return "\n".join(kept) + "\n"


def hosts_path(root: Path, container_id: str) -> Path:
    return Path(root) / "containers" / container_id / "hosts"


def rewrite_hosts(root: Path, c: ContainerNet, networks: dict[str, Network],
                  everyone: list[ContainerNet]) -> None:
    """Refresh a container's hosts file in place, if the engine has written one."""
    path = hosts_path(root, c.container_id)
    if path.is_symlink():
        return  # never follow a link planted in the container dir
    text = hosts_text(hosts_entries(c, networks, everyone)) + _extra_hosts(path)
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        with open(path, "r+") as f:
            if f.read() == text:
                return
            f.seek(0)
            f.write(text)
            f.truncate()


def _extra_hosts(hosts: Path) -> str:
    """The container's --add-host lines (node/engine/etcfiles.py keeps them in ``hosts.extra``)."""
    extra = hosts.with_name("hosts.extra")
    if extra.is_symlink():
        return ""
    try:
        return extra.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return ""


def peers_of(c: ContainerNet, networks: dict[str, Network],
             everyone: list[ContainerNet]) -> list[ContainerNet]:
    """Containers sharing a user-defined network with ``c`` (their hosts files mention it)."""
    mine = {ep.network for ep in c.endpoints
            if networks.get(ep.network) is not None and networks[ep.network].user_defined}
    return [p for p in everyone if p.container_id != c.container_id
            and any(ep.network in mine for ep in p.endpoints)]


def _unique(names: list[str]) -> list[str]:
    return [n for n in dict.fromkeys(names) if n]

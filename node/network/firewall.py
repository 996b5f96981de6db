"""NAT and isolation rules in one nftables table per agent root, rebuilt from the records.

Why rebuild instead of adding and deleting single rules: the records in state.py are the truth,
so rendering the whole table from them and swapping it in one ``nft -f`` transaction (atomic in
the kernel) can never leave a stale rule behind — a crash, a manual ``nft flush`` or a reboot is
repaired by the next attach, detach or reclaim. A node runs tens of containers; the table is a
few dozen lines and ``nft`` takes milliseconds.

Why NAT rules and no userspace proxy (Docker runs both): the agent is not a daemon, so a proxy
would need its own long-lived process per published port to be supervised, restarted and
killed; kernel DNAT survives the agent exiting, keeps the client's source address for the
container and costs nothing per packet. What Docker's proxy is for — connections to
127.0.0.1:HOSTPORT from the host itself — is done in the kernel too: the ``output`` hook DNATs
locally generated packets, ``route_localnet=1`` on the bridge (links.py) lets a packet with a
127.0.0.1 source leave through it, and it is masqueraded to the gateway address so the
container can answer.

The table::

    prerouting (nat, dstnat)   packets from other hosts / containers to a host address -> publish
    output     (nat, dstnat)   packets the host sends to one of its addresses          -> publish
    publish                    one DNAT rule per published port, commented with the container
    postrouting(nat, srcnat)   masquerade: containers going out, 127.0.0.1 sources, hairpin
    forward    (filter)        isolation: no traffic from one dockyard bridge to another,
                               except connections that were DNATed to a published port
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from node.network import links
from node.network.state import ContainerNet, Network, NetworkError, Store, sha256


def table_name(store: Store) -> str:
    return f"dockyard_{store.root_key}"


def render(table: str, networks: list[Network], containers: list[ContainerNet]) -> str:
    """The whole nft script that replaces ``table`` (deleting it when there is nothing to do)."""
    lines = [f"table ip {table}", f"delete table ip {table}"]
    if not networks:
        return "\n".join(lines) + "\n"
    publish, postrouting, forward = [], [], []
    bridges = [n.bridge for n in networks]
    for net in networks:
        b = _q(net.bridge)
        postrouting += [
            f"ip saddr {net.subnet} oifname != {b} masquerade",
            f"oifname {b} ip saddr 127.0.0.0/8 masquerade",
            f"ip saddr {net.subnet} oifname {b} ct status dnat masquerade",
        ]
        others = [_q(o) for o in bridges if o != net.bridge]
        if others:
            forward.append(f"iifname {b} oifname {{ {', '.join(others)} }} drop")
    for c in containers:
        publish += _publish_rules(c)
    lines.append(f"table ip {table} {{")
    lines += _chain("prerouting", "type nat hook prerouting priority dstnat; policy accept;",
                    ["fib daddr type local jump publish"])
    lines += _chain("output", "type nat hook output priority -100; policy accept;",
                    ["fib daddr type local jump publish"])
    lines += _chain("publish", None, publish)
    lines += _chain("postrouting", "type nat hook postrouting priority srcnat; policy accept;",
                    postrouting)
    lines += _chain("forward", "type filter hook forward priority filter; policy accept;",
                    (["ct status dnat accept"] + forward) if forward else [])
    lines.append("}")
    return "\n".join(lines) + "\n"


def _publish_rules(c: ContainerNet) -> list[str]:
    """The DNAT rules of one container's published ports (chain ``publish``). Rules of different
    containers never overlap (ports.bind_ports refuses a port two could match), so their order
    in the chain does not change what the table does."""
    if not c.endpoints:
        return []
    target = c.endpoints[0].ip  # ports are published on the first (primary) network
    rules = []
    for p in c.ports:
        match = f"ip daddr {p.host_ip} " if p.host_ip else ""
        rules.append(f"{match}{p.proto} dport {p.host_port} dnat to {target}:{p.container_port}"
                     f' comment "{_comment(c.container_id)}"')
    return rules


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def apply(store: Store, without: frozenset[str] = frozenset(), force: bool = False) -> None:
    """Make the kernel's table match the records (call under the store lock), leaving out the
    networks named in ``without``: they are being removed, kernel objects before their records,
    so that a crash in between leaves a record to retry from rather than an orphan.

    A script identical to the one this root last applied since boot is not sent again: most
    attaches publish nothing and change no rule, and ``nft`` is a process per call. ``force``
    (reclaim, `network ls`) re-applies anyway, which repairs a table someone flushed by hand."""
    pending = start_apply(store, without, force)
    if pending is not None:
        pending.finish()


class PendingApply:
    """An ``nft -f`` under way (start_apply); finish() waits for it and says how it went.
    ``full``: the whole script, sent if ``running`` was only the added rules and nft refused them
    (the table is not what the marker says: flushed by hand, say)."""

    def __init__(self, running: links.RunningTool, marker: Path, stamp: str, full: str = "") -> None:
        self.running, self.marker, self.stamp, self.full = running, marker, stamp, full

    def finish(self) -> None:
        proc = self.running.wait(timeout=None)
        if proc.returncode != 0 and self.full:
            proc = _start_nft(self.full).wait(timeout=None)
        if proc.returncode != 0:
            with contextlib.suppress(OSError):
                self.marker.unlink()
            raise NetworkError(f"nft refused the dockyard rules: {proc.stderr.strip()}")
        with contextlib.suppress(OSError):
            tmp = self.marker.with_name(self.marker.name + ".tmp")
            tmp.write_text(self.stamp)
            os.replace(tmp, self.marker)


def start_apply(store: Store, without: frozenset[str] = frozenset(),
                force: bool = False, added: str | None = None) -> PendingApply | None:
    """apply() in two halves: the script is rendered from the records now and ``nft`` started,
    so that its commit (a kernel wait of 12-40 ms for an RCU grace period) overlaps the caller's
    next steps (attach: the veth's two ``ip`` runs); the caller must finish() it on every path,
    under the same lock, before anything else changes the table. None: nothing to send.

    ``added``: the id of a container whose record was just saved (attach). If the kernel's table
    is, by the marker, the one rendered from the records without it, only its DNAT rules are
    added (``add rule``) instead of the table being replaced: replacing deletes the old rules and
    chains, and an nf_tables transaction that deletes waits for the kernel (~12 ms of a 14 ms
    ``nft -f`` on a quiet machine, against 2 ms for a transaction that only adds) — on the path
    of every `run -p` before its port answers. The result is the table the full script makes
    but for the order of the publish rules, which never overlap (_publish_rules)."""
    networks = [n for n in store.networks() if n.name not in without]
    containers = store.containers()
    table = table_name(store)
    script = render(table, networks, containers)
    marker = store.dir / "firewall.applied"
    boot = _boot_id()
    stamp = sha256(f"{boot}\n{script}".encode()).hexdigest()
    applied = None
    if not force:
        with contextlib.suppress(OSError):
            applied = marker.read_text()
        if applied == stamp:
            return None
    if added is not None and applied is not None and networks:
        others = [c for c in containers if c.container_id != added]
        before = render(table, networks, others)
        if applied == sha256(f"{boot}\n{before}".encode()).hexdigest():
            rules = [r for c in containers if c.container_id == added for r in _publish_rules(c)]
            if rules:
                delta = "".join(f"add rule ip {table} publish {r}\n" for r in rules)
                return PendingApply(_start_nft(delta), marker, stamp, full=script)
    return PendingApply(_start_nft(script), marker, stamp)


def _start_nft(script: str) -> links.RunningTool:
    nft = links.which("nft", "/usr/sbin/nft")
    try:
        return links.start_tool([nft, "-f", "-"], script)
    except FileNotFoundError:
        raise NetworkError("nft (package nftables) is needed for bridge networking") from None


def ruleset(store: Store) -> str:
    """The live table as nft prints it ("" if absent): for inspection and tests."""
    nft = links.which("nft", "/usr/sbin/nft")
    proc = links.run_tool([nft, "list", "table", "ip", table_name(store)], timeout=None)
    return proc.stdout if proc.returncode == 0 else ""


def _chain(name: str, header: str | None, rules: list[str]) -> list[str]:
    body = ([f"    {header}"] if header else []) + [f"    {r}" for r in rules]
    return [f"  chain {name} {{", *body, "  }"]


def _q(ifname: str) -> str:
    return f'"{ifname}"'


def _comment(container_id: str) -> str:
    # Container ids are validated by the store ([A-Za-z0-9_.-]); quotes can never appear.
    return f"dockyard container {container_id[:64]}"

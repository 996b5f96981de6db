"""--add-host, --dns, --dns-search and --dns-option applied to the container's /etc/hosts and
/etc/resolv.conf (files in its record dir, written by netsetup at every start), as docker applies
them: extra hosts are appended as "IP<tab>NAME" (the address host-gateway is the default bridge's
gateway, the host's own address on it, as docker's docker0); --dns replaces the nameserver lines,
--dns-search the search line ("." drops it) and --dns-option the options line; the other
resolv.conf lines stay."""
from __future__ import annotations

HOST_GATEWAY = "host-gateway"


EXTRA_HOSTS = "hosts.extra"  # the --add-host lines, kept beside the hosts file for node/network/hosts.py


def apply(record_dir, hc, root=None) -> None:
    extra = record_dir / EXTRA_HOSTS
    extra.unlink(missing_ok=True)
    if hc.extra_hosts:
        hosts = record_dir / "hosts"
        text = hosts.read_text()
        if text and not text.endswith("\n"):
            text += "\n"
        gateway, lines = None, ""
        for entry in hc.extra_hosts:
            name, _, ip = entry.partition(":")
            if ip == HOST_GATEWAY:
                gateway = gateway or host_gateway(root if root is not None else record_dir.parent.parent)
                ip = gateway
            lines += f"{ip}\t{name}\n"
        # The network layer rewrites the hosts file when peers come and go; it appends these again.
        extra.write_text(lines)
        hosts.write_text(text + lines)
    if hc.dns or hc.dns_search or getattr(hc, "dns_options", None):
        resolv = record_dir / "resolv.conf"
        resolv.write_text(rewrite_resolv_conf(resolv.read_text(), hc.dns, hc.dns_search,
                                              getattr(hc, "dns_options", None) or []))


def host_gateway(root) -> str:
    """The gateway of the node's default bridge network (made on first use, as docker0 is there
    from the daemon's start)."""
    from node.engine import EngineError
    from node.forkguard import own_process
    from node.network import networks
    from node.network.state import Store

    @own_process
    def lookup() -> str:
        store = Store(root)
        net = store.network("bridge")
        if net is not None:
            return net.gateway
        with store.locked():
            return networks.ensure_default(store).gateway
    try:
        return lookup()
    except Exception as e:  # noqa: BLE001 - the network layer's errors, in one line
        raise EngineError(f"unable to derive the IP value for host-gateway: {e}", 125) from None


def rewrite_resolv_conf(text: str, dns: list[str], search: list[str], options: list[str] = ()) -> str:
    kept = []
    for line in text.splitlines():
        word = line.split()[0] if line.split() else ""
        if (dns and word == "nameserver") or (search and word in ("search", "domain")) \
                or (options and word == "options"):
            continue
        kept.append(line)
    head = [f"nameserver {ip}" for ip in dns]
    domains = [d for d in search if d != "."]
    if domains:
        head.append("search " + " ".join(domains))
    if options:
        head.append("options " + " ".join(options))
    return "\n".join(head + kept) + "\n"

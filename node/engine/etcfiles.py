"""--add-host, --dns and --dns-search applied to the container's /etc/hosts and /etc/resolv.conf
(files in its record dir, written by netsetup at every start), as docker applies them: extra
hosts are appended as "IP<tab>NAME"; --dns replaces the nameserver lines and --dns-search the
search line ("." drops it); the other resolv.conf lines stay."""
from __future__ import annotations


def apply(record_dir, hc) -> None:
    if hc.extra_hosts:
        hosts = record_dir / "hosts"
        text = hosts.read_text()
        if text and not text.endswith("\n"):
            text += "\n"
        for entry in hc.extra_hosts:
            name, _, ip = entry.partition(":")
            text += f"{ip}\t{name}\n"
        hosts.write_text(text)
    if hc.dns or hc.dns_search:
        resolv = record_dir / "resolv.conf"
        resolv.write_text(rewrite_resolv_conf(resolv.read_text(), hc.dns, hc.dns_search))


def rewrite_resolv_conf(text: str, dns: list[str], search: list[str]) -> str:
    kept = []
    for line in text.splitlines():
        word = line.split()[0] if line.split() else ""
        if (dns and word == "nameserver") or (search and word in ("search", "domain")):
            continue
        kept.append(line)
    head = [f"nameserver {ip}" for ip in dns]
    domains = [d for d in search if d != "."]
    if domains:
        head.append("search " + " ".join(domains))
    return "\n".join(head + kept) + "\n"

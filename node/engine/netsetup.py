"""The engine's side of networking: `none` (a new, empty network namespace with lo up) and `host`
(no network namespace) are handled here; any other mode is a network managed by
node.network.api, imported only when needed so `run --network none` stays fast:

    attach(root, container_id, container_name, network, publish, publish_all, exposed_ports,
           aliases, ip, hostname) -> Attachment   (called at every start)
    detach(root, container_id)                    (on exit; idempotent)

The Attachment gives the netns file the container joins, its addresses, the /etc/hosts entries
and the resolv.conf text. /etc/hostname, /etc/hosts and /etc/resolv.conf are files in the
container's record dir, bind-mounted by the bundle.
"""
from __future__ import annotations

from pathlib import Path

from node.engine import EngineError, events
from node.forkguard import own_process

LOCALHOST_LINES = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                   "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")


class NetworkSetup:
    def __init__(self, mode: str, netns_path: str | None = None, attachment=None) -> None:
        self.mode = mode
        self.netns_path = netns_path
        self.attachment = attachment
        # the IPv6 proxy's listening sockets (node/network/userproxy.py), until spawn_proxy or
        # proxy_handover takes them or close_proxy closes them
        self.proxy_listeners: list = []

    def spawn_proxy(self, record_dir) -> None:
        """Fork the published ports' IPv6 proxy in this process (the attached `run`)."""
        if self.proxy_listeners:
            from node.network import userproxy
            listeners, self.proxy_listeners = self.proxy_listeners, []
            userproxy.spawn(record_dir, listeners, self.attachment.ip_address)

    def proxy_handover(self) -> str:
        """The listeners as a word for the shim, which spawns the proxy ("-": none)."""
        if not self.proxy_listeners:
            return "-"
        from node.network import userproxy
        return userproxy.handover(self.proxy_listeners, self.attachment.ip_address)

    def close_proxy(self) -> None:
        if self.proxy_listeners:
            from node.network import userproxy
            listeners, self.proxy_listeners = self.proxy_listeners, []
            userproxy.close(listeners)

    def namespace_entry(self) -> dict | None:
        if self.mode == "host":
            return None
        entry = {"type": "network"}
        if self.netns_path:
            entry["path"] = self.netns_path
        return entry


def host_resolv_conf() -> str:
    try:
        with open("/etc/resolv.conf") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    # a loopback resolver on the host is unreachable from a container's own network namespace
    kept = [ln for ln in lines if not (ln.startswith("nameserver") and (" 127." in ln or " ::1" in ln))]
    return "\n".join(kept) + "\n"


def setup(root, container) -> NetworkSetup:
    result = _setup(root, container)
    from node.engine import etcfiles
    etcfiles.apply(container.dir, container.host_config, root)
    return result


def _setup(root, container) -> NetworkSetup:
    hc, config = container.host_config, container.config
    mode = hc.network_mode or "none"
    hostname = config.hostname
    d = container.dir
    (d / "hostname").write_text(hostname + "\n")
    if mode in ("none", "host"):
        if mode == "host":
            try:
                hosts = open("/etc/hosts").read()
            except OSError:
                hosts = LOCALHOST_LINES
            resolv = open("/etc/resolv.conf").read() if _exists("/etc/resolv.conf") else ""
        else:
            hosts = LOCALHOST_LINES
            resolv = host_resolv_conf()
        (d / "hosts").write_text(hosts)
        (d / "resolv.conf").write_text(resolv)
        return NetworkSetup(mode)
    from node.network import api
    try:
        attachment = own_process(api.attach)(
            root, container.id, container.name, mode, hc.port_bindings, hc.publish_all_ports,
            list(config.exposed_ports or {}), config.network_aliases, config.ip_address, hostname)
    except Exception as e:
        if isinstance(e, EngineError):
            raise
        # the network layer's own errors become one line for the user
        raise EngineError(f"network {mode}: {e}", 125) from None
    lines = [LOCALHOST_LINES]
    for ip, names in attachment.hosts or []:
        lines.append(f"{ip}\t{' '.join(names)}\n")
    (d / "hosts").write_text("".join(lines))
    (d / "resolv.conf").write_text(attachment.resolv_conf or host_resolv_conf())
    _network_events(root, container, "connect", attachment)
    result = NetworkSetup(mode, attachment.netns_path, attachment)
    if attachment.bindings:
        result.proxy_listeners = _listen_userproxy(root, container, attachment)
    return result


def _listen_userproxy(root, container, attachment) -> list:
    """Published ports on [::] too (node/network/userproxy.py), shown as docker shows them: the
    sockets listen now; the proxy that serves them is forked once the container runs."""
    from node.network import userproxy
    try:
        listeners, served = userproxy.listen(attachment.bindings)
    except userproxy.ProxyError as e:
        teardown(root, container)
        raise EngineError(str(e), 125) from None
    for b in served:
        key = f"{b.container_port}/{b.proto}"
        attachment.ports[key] = (attachment.ports.get(key) or []) + [{"HostIp": "::", "HostPort": str(b.host_port)}]
    return listeners


def teardown(root, container) -> None:
    mode = container.host_config.network_mode or "none"
    if mode in ("none", "host"):
        return
    from node.network import api, userproxy
    userproxy.stop(container.dir)
    try:
        attached = api.attachment_of(Path(root), container.id)
    except Exception:  # noqa: BLE001 - only the events would miss it
        attached = None
    own_process(api.detach)(root, container.id)
    _network_events(root, container, "disconnect", attached)


def _network_events(root, container, action: str, attachment) -> None:
    """docker's ``network connect``/``disconnect`` for each network of the container."""
    for ep in getattr(attachment, "endpoints", None) or []:
        events.emit(root, "network", action, attachment.network_ids.get(ep.network, ep.network),
                    {"container": container.id, "name": ep.network, "type": "bridge"})


def _exists(path: str) -> bool:
    try:
        open(path).close()
        return True
    except OSError:
        return False

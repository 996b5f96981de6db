"""The bridge driver on the real kernel: namespaces, veths, nftables, without the engine.

Containers are stood in for by `busybox httpd` started inside the namespace attach() made
(nsenter --net); a second "host" is a network namespace the test connects to this host with a
veth pair on 10.251.N.0/30 (N from the pid). Everything is removed at teardown (api.purge + the test's links).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from node.network import api, firewall, links, networks
from node.network.state import NetworkError, Store
from tests.helpers import free_port, need_root, need_tool, wait_until

pytestmark = pytest.mark.root

# Per-process addresses and link names: two test runs on one machine must not collide.
N = 10 + os.getpid() % 240
REMOTE = f"10.251.{N}"  # .1 here, .2 in the remote namespace
HOST_LINK, REMOTE_LINK, DUMMY = (f"dyt{os.getpid() % 100000}{s}" for s in ("h", "r", "d"))

FETCH = (
    "import sys, urllib.request;"
    "print(urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])).read().decode())"
)

ECHO_CLIENT = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.client_address[0].encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
"""


@pytest.fixture
def net_root(tmp_path):
    need_root()
    need_tool("nft", "nsenter", "unshare", "busybox")
    root = tmp_path / "root"
    root.mkdir()
    procs: list[subprocess.Popen] = []
    yield root, procs
    for p in procs:
        p.kill()
        p.wait()
    api.purge(root)


@pytest.fixture
def remote_host():
    """A second machine: a netns joined to this host by a veth pair (REMOTE.1/30 here,
    REMOTE.2/30 there)."""
    path = str(links.NETNS_DIR / f"test-remote-{os.getpid()}")
    links.create_netns(path)
    links.delete_link(HOST_LINK)
    links.run_ip([f"link add {HOST_LINK} type veth peer name {REMOTE_LINK}",
                  f"addr add {REMOTE}.1/30 dev {HOST_LINK}", f"link set {HOST_LINK} up",
                  f"link set {REMOTE_LINK} netns {path}"])
    links.run_ip([f"addr add {REMOTE}.2/30 dev {REMOTE_LINK}", f"link set {REMOTE_LINK} up"], netns=path)
    yield path
    links.delete_link(HOST_LINK)
    links.remove_netns(path)


def serve(procs, netns_path: str, www: Path, text: str) -> None:
    www.mkdir(parents=True, exist_ok=True)
    (www / "index.html").write_text(text)
    procs.append(subprocess.Popen(["nsenter", f"--net={netns_path}", "busybox", "httpd", "-f",
                                   "-p", "80", "-h", str(www)]))


def fetch_in(netns_path: str, url: str, hosts_file: Path | None = None, timeout=3.0) -> str | None:
    """GET url from inside a namespace (with its hosts file on /etc/hosts); None on failure."""
    cmd = [sys.executable, "-c", FETCH, url, str(timeout)]
    if hosts_file is not None:
        cmd = ["unshare", "--mount", "sh", "-c",
               f'mount --bind "{hosts_file}" /etc/hosts && exec "$@"', "sh", *cmd]
    proc = subprocess.run(["nsenter", f"--net={netns_path}", *cmd], capture_output=True,
                          text=True, timeout=timeout + 10)
    return proc.stdout.strip() if proc.returncode == 0 else None


def fetch(url: str, timeout=3.0) -> str:
    deadline = time.monotonic() + 5
    while True:  # httpd may still be starting
        try:
            return urllib.request.urlopen(url, timeout=timeout).read().decode().strip()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def attach(root, cid, network="bridge", **kw):
    args = dict(publish=[], publish_all=False, exposed_ports=[], aliases=[], ip=None,
                hostname=cid[:12])
    args.update(kw)
    return api.attach(root, cid, cid.rstrip("0123456789") or cid, network, **args)


def test_published_port_from_host_and_another_host_then_gone(net_root, remote_host, tmp_path):
    root, procs = net_root
    port = free_port()
    a = attach(root, "web1", publish=[f"{port}:80", "80"])
    assert a.netns_path.startswith("/run/dockyard/netns/") and links.is_netns(a.netns_path)
    assert a.ports["80/tcp"][0] == {"HostIp": "0.0.0.0", "HostPort": str(port)}
    random_port = int(a.ports["80/tcp"][1]["HostPort"])
    serve(procs, a.netns_path, tmp_path / "www", "hello from web1")

    assert fetch(f"http://{a.ip_address}/") == "hello from web1"  # the container address
    assert fetch(f"http://127.0.0.1:{port}/") == "hello from web1"  # published, on loopback
    assert fetch(f"http://127.0.0.1:{random_port}/") == "hello from web1"
    # another machine reaches the published port through this host's address on their link
    assert fetch_in(remote_host, f"http://{REMOTE}.1:{port}/") == "hello from web1"
    # hairpin: the container reaches its own published port through the host's address
    assert fetch_in(a.netns_path, f"http://{a.gateway}:{port}/") == "hello from web1"
    # outbound: the remote host sees the host's address, not the container's (masquerade)
    procs.append(subprocess.Popen(["nsenter", f"--net={remote_host}", sys.executable, "-c",
                                   ECHO_CLIENT, "18777"]))
    deadline = time.monotonic() + 5
    while (seen := fetch_in(a.netns_path, f"http://{REMOTE}.2:18777/")) is None:
        assert time.monotonic() < deadline, "the remote echo server never answered"
        time.sleep(0.1)
    assert seen == f"{REMOTE}.1"
    # inside: eth0 with the address, default route via the gateway, loopback up
    out = subprocess.run(["nsenter", f"--net={a.netns_path}", "busybox", "ip", "route"],
                         capture_output=True, text=True).stdout
    assert f"default via {a.gateway} dev eth0" in out
    assert f"dnat to {a.ip_address}:80" in firewall.ruleset(Store(root))

    bridge = Store(root).network("bridge").bridge
    api.detach(root, "web1")
    api.detach(root, "web1")  # idempotent
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
    assert not os.path.exists(a.netns_path)
    # a server still runs in the namespace, so detach deleted the veth itself
    assert not links.link_exists(a.endpoints[0].host_veth)
    assert "web1" not in firewall.ruleset(Store(root))
    # the idle default bridge stays, like docker0; purge removes it with the table
    assert Store(root).network("bridge").allocations == {}
    assert links.link_exists(bridge)
    api.purge(root)
    assert Store(root).network("bridge") is None
    assert not links.link_exists(bridge)
    assert firewall.ruleset(Store(root)) == ""


def test_user_networks_resolve_names_and_are_isolated(net_root, tmp_path):
    root, procs = net_root
    store = Store(root)
    networks.create(store, "app")
    networks.create(store, "other", subnet=f"10.249.{N}.0/24")
    for cid in ("aaa1", "bbb1", "ccc1"):  # the engine keeps these files and bind-mounts them
        (root / "containers" / cid).mkdir(parents=True)
        (root / "containers" / cid / "hosts").write_text("")
    a = attach(root, "aaa1", "app", aliases=["db"])
    b = attach(root, "bbb1", "app")
    c = attach(root, "ccc1", "other", ip=f"10.249.{N}.77")
    assert c.ip_address == f"10.249.{N}.77"
    serve(procs, a.netns_path, tmp_path / "wa", "I am a")
    serve(procs, c.netns_path, tmp_path / "wc", "I am c")
    fetch(f"http://{a.ip_address}/")
    fetch(f"http://{c.ip_address}/")

    b_hosts = root / "containers" / "bbb1" / "hosts"
    a_hosts = root / "containers" / "aaa1" / "hosts"
    assert (a.ip_address, ["aaa", "db"]) in b.hosts
    assert f"{b.ip_address}\tbbb\n" in a_hosts.read_text()  # a's file was updated when b came
    assert fetch_in(b.netns_path, "http://aaa/", b_hosts) == "I am a"
    assert fetch_in(b.netns_path, "http://db/", b_hosts) == "I am a"
    # the other network: no route through the host between the two bridges
    assert fetch_in(c.netns_path, f"http://{a.ip_address}/", timeout=1.5) is None
    assert fetch_in(b.netns_path, f"http://{c.ip_address}/", timeout=1.5) is None
    with pytest.raises(NetworkError, match="already in use"):
        attach(root, "ddd1", "other", ip=f"10.249.{N}.77")
    with pytest.raises(NetworkError, match="active endpoints"):
        networks.remove(store, "app")

    api.detach(root, "bbb1")
    assert "bbb" not in a_hosts.read_text()  # peers forget a container that left


def test_connect_and_disconnect_a_second_network(net_root, tmp_path):
    root, procs = net_root
    networks.create(Store(root), "app")
    a = attach(root, "aaa1")
    b = attach(root, "bbb1", "app")
    serve(procs, b.netns_path, tmp_path / "wb", "I am b")
    fetch(f"http://{b.ip_address}/")
    assert fetch_in(a.netns_path, f"http://{b.ip_address}/", timeout=1.5) is None
    att = api.connect(root, "aaa", "app", aliases=["front"])
    assert [e.ifname for e in att.endpoints] == ["eth0", "eth1"]
    assert fetch_in(a.netns_path, f"http://{b.ip_address}/") == "I am b"
    api.disconnect(root, "aaa1", "app")
    assert fetch_in(a.netns_path, f"http://{b.ip_address}/", timeout=1.5) is None
    assert list(networks.find(Store(root), "app").allocations.values()) == ["bbb1"]


def test_reclaim_releases_crashed_containers_only(net_root):
    root, procs = net_root
    alive = attach(root, "live1", publish=["80"])
    crashed = attach(root, "dead1", publish=["80"])
    gone = attach(root, "boot1")
    procs.append(subprocess.Popen(["nsenter", f"--net={alive.netns_path}", "sleep", "60"]))
    time.sleep(0.2)
    links.remove_netns(gone.netns_path)  # what a reboot does to /run
    assert api.reclaim(root, grace=3600) == ["boot1"]  # too young to judge the others
    assert sorted(api.reclaim(root, grace=0)) == ["dead1"]
    rules = firewall.ruleset(Store(root))
    assert "live1" in rules and "dead1" not in rules
    assert sorted(networks.find(Store(root), "bridge").allocations.values()) == ["live1"]
    # nobody is in the crashed ones' namespaces: the kernel deletes their veths with them
    for veth in (crashed.endpoints[0].host_veth, gone.endpoints[0].host_veth):
        wait_until(lambda: not links.link_exists(veth), what=f"{veth} gone with its namespace")
    assert links.link_exists(alive.endpoints[0].host_veth)


def test_network_create_refuses_overlapping_subnets(net_root):
    root, _ = net_root
    links.delete_link(DUMMY)
    links.run_ip([f"link add {DUMMY} type veth peer name {DUMMY}p", f"addr add 10.253.{N}.1/24 dev {DUMMY}",
                  f"link set {DUMMY} up", f"link set {DUMMY}p up"])
    try:
        proc = subprocess.run([sys.executable, "-m", "node", "--root", str(root), "network",
                               "create", "--subnet", f"10.253.{N}.0/25", "clash"],
                              capture_output=True, text=True)
        assert proc.returncode == 1
        assert "overlaps" in proc.stderr and DUMMY in proc.stderr
        networks.create(Store(root), "ok", subnet=f"10.254.{N}.0/24")
        with pytest.raises(NetworkError, match="overlaps network ok"):
            networks.create(Store(root), "ok2", subnet=f"10.254.{N}.128/25")
    finally:
        links.delete_link(DUMMY)


def test_reclaim_removes_namespace_of_an_attach_killed_midway(net_root):
    root, _ = net_root
    path = api.netns_path_for(root, "half1")
    Store(root).dir.mkdir(parents=True)
    links.create_netns(path)  # namespace made, record never saved
    api.reclaim(root)
    assert not os.path.exists(path)


def _nft_scripts(monkeypatch) -> list[str]:
    """Every script attach/detach hands to nft from now on."""
    sent: list[str] = []
    start = firewall._start_nft

    def spy(script: str):
        sent.append(script)
        return start(script)
    monkeypatch.setattr(firewall, "_start_nft", spy)
    return sent


def test_a_published_port_is_added_to_the_table_not_replacing_it(net_root, tmp_path, monkeypatch):
    """The second attach with a port sends only `add rule` (a transaction that deletes nothing:
    no kernel wait); both ports answer, and the next full apply (detach) renders the same rules."""
    root, procs = net_root
    one, two = free_port(), free_port()
    a = attach(root, "web1", publish=[f"{one}:80"])
    sent = _nft_scripts(monkeypatch)
    b = attach(root, "web2", publish=[f"{two}:80"])
    table = firewall.table_name(Store(root))
    assert len(sent) == 1 and sent[0].splitlines() == [
        f'add rule ip {table} publish tcp dport {two} dnat to {b.ip_address}:80 '
        f'comment "dockyard container web2"']
    serve(procs, a.netns_path, tmp_path / "wa", "I am a")
    serve(procs, b.netns_path, tmp_path / "wb", "I am b")
    assert fetch(f"http://127.0.0.1:{one}/") == "I am a"
    assert fetch(f"http://127.0.0.1:{two}/") == "I am b"
    # no nft at all for an attach that publishes nothing
    attach(root, "quiet1")
    assert len(sent) == 1
    api.detach(root, "web1")
    assert "delete table" in sent[-1] and "web2" in sent[-1] and "web1" not in sent[-1]
    assert fetch(f"http://127.0.0.1:{two}/") == "I am b"


def test_a_table_changed_behind_our_back_is_replaced_whole(net_root, tmp_path, monkeypatch):
    """The marker says the kernel has the table; someone deleted it: the added rule is refused
    and the whole table is sent instead, so the port still answers."""
    root, procs = net_root
    attach(root, "web1", publish=["80"])
    table = firewall.table_name(Store(root))
    subprocess.run(["nft", "delete", "table", "ip", table], check=True)
    sent = _nft_scripts(monkeypatch)
    port = free_port()
    b = attach(root, "web2", publish=[f"{port}:80"])
    assert sent[0].startswith("add rule") and "delete table" in sent[1]
    serve(procs, b.netns_path, tmp_path / "wb", "I am b")
    assert fetch(f"http://127.0.0.1:{port}/") == "I am b"
    assert "web1" in firewall.ruleset(Store(root))

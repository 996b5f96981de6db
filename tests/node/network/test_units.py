"""Network pieces that need no root: IPAM, port specs, rendered rules, hosts files, records."""
from __future__ import annotations

import ipaddress
import socket

import pytest

from node.network import firewall, hosts, ipam, ports
from node.network.state import ContainerNet, Endpoint, Network, NetworkError, PortBinding, Store


def _net(name="app", subnet="10.99.0.0/29", bridge="dy-app") -> Network:
    return Network(name=name, id="f" * 64, subnet=subnet, gateway=ipam.default_gateway(
        ipaddress.IPv4Network(subnet)), bridge=bridge, created="now")


def _ctr(cid, name, network, ip, aliases=(), ports_=()) -> ContainerNet:
    ep = Endpoint(network=network, ifname="eth0", host_veth="dyv" + cid[:12], ip=ip, prefixlen=24,
                  gateway="10.99.0.1", mac=ipam.mac_for(ip), aliases=list(aliases))
    return ContainerNet(container_id=cid, name=name, hostname=cid[:12], netns_path="/x",
                        created=0.0, endpoints=[ep], ports=list(ports_))


def test_allocate_never_twice_and_release_returns_to_pool():
    net = _net()  # /29: .1 gateway, .2-.6 usable
    got = [ipam.allocate(net, f"c{i}") for i in range(5)]
    assert got == [f"10.99.0.{n}" for n in range(2, 7)]
    with pytest.raises(NetworkError, match="no free address"):
        ipam.allocate(net, "c5")
    assert ipam.release(net, "c2") == ["10.99.0.4"]
    assert ipam.allocate(net, "c9") == "10.99.0.4"


def test_requested_address_checks():
    net = _net()
    assert ipam.allocate(net, "a", "10.99.0.5") == "10.99.0.5"
    with pytest.raises(NetworkError, match="already in use"):
        ipam.allocate(net, "b", "10.99.0.5")
    for bad in ("10.99.0.1", "10.99.0.7", "10.98.0.3", "nope"):
        with pytest.raises(NetworkError):
            ipam.allocate(net, "b", bad)


def test_subnet_parsing_and_overlap():
    assert str(ipam.parse_subnet("10.1.0.0/16")) == "10.1.0.0/16"
    for bad in ("10.1.2.3/16", "fd00::/64", "127.0.0.0/8", "10.0.0.0/30", "garbage"):
        with pytest.raises(NetworkError):
            ipam.parse_subnet(bad)
    taken = [(ipaddress.IPv4Network("172.30.0.0/16"), "route via eth9")]
    assert ipam.first_overlap(ipaddress.IPv4Network("172.30.5.0/24"), taken) == \
        "route via eth9 (172.30.0.0/16)"
    assert str(ipam.choose_subnet(["172.30.0.0/16", "172.31.0.0/16"], taken)) == "172.31.0.0/16"


def test_parse_publish_forms():
    assert ports.parse_publish("8080:80") == ports.PortSpec("tcp", 80, "", 8080)
    assert ports.parse_publish("127.0.0.1:8080:80/udp") == ports.PortSpec("udp", 80, "127.0.0.1", 8080)
    assert ports.parse_publish("80") == ports.PortSpec("tcp", 80, "", 0)
    assert ports.parse_publish("127.0.0.1::80") == ports.PortSpec("tcp", 80, "127.0.0.1", 0)
    assert ports.parse_publish("0.0.0.0:1:2").host_ip == ""
    for bad in ("80/sctp", "70000:80", "a:b", "1:2:3:4", "8000-8010:80", "x.y:1:2"):
        with pytest.raises(NetworkError):
            ports.parse_publish(bad)


def test_bind_ports_refuses_taken_and_busy_ports():
    other = _ctr("other1", "other", "bridge", "172.30.0.2",
                 ports_=[PortBinding("tcp", 80, "", 18080)])
    with pytest.raises(NetworkError, match="already allocated"):
        ports.bind_ports([ports.PortSpec("tcp", 80, "", 18080)], [other], "me")
    # same port number over udp is a different port
    assert ports.bind_ports([ports.PortSpec("udp", 80, "", 18080)], [other], "me")[0].host_port == 18080
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        busy = s.getsockname()[1]
        with pytest.raises(NetworkError, match="already in use"):
            ports.bind_ports([ports.PortSpec("tcp", 80, "", busy)], [], "me")
    picked = ports.bind_ports([ports.PortSpec("tcp", 80), ports.PortSpec("tcp", 81)], [], "me")
    assert len({b.host_port for b in picked}) == 2 and all(b.host_port > 1024 for b in picked)


def test_docker_port_shapes():
    b = [PortBinding("tcp", 80, "", 8080), PortBinding("udp", 53, "127.0.0.1", 5353)]
    assert ports.docker_ports(b, ["80/tcp", "443/tcp"]) == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
        "443/tcp": None,
        "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
    }
    assert ports.format_ps(b) == "0.0.0.0:8080->80/tcp, 127.0.0.1:5353->53/udp"


def test_rendered_rules_publish_masquerade_and_isolate():
    nets = [_net("bridge", "172.30.0.0/16", "dockyard0"), _net("app", "10.99.0.0/24", "dy-app")]
    web = _ctr("webid", "web", "bridge", "172.30.0.2",
               ports_=[PortBinding("tcp", 80, "", 8080), PortBinding("udp", 53, "127.0.0.1", 53)])
    text = firewall.render("dockyard_t", nets, [web])
    assert text.startswith("table ip dockyard_t\ndelete table ip dockyard_t\n")
    assert 'tcp dport 8080 dnat to 172.30.0.2:80 comment "dockyard container webid"' in text
    assert "ip daddr 127.0.0.1 udp dport 53 dnat to 172.30.0.2:53" in text
    assert 'ip saddr 10.99.0.0/24 oifname != "dy-app" masquerade' in text
    assert 'oifname "dockyard0" ip saddr 127.0.0.0/8 masquerade' in text
    assert 'iifname "dockyard0" oifname { "dy-app" } drop' in text
    assert 'iifname "dy-app" oifname { "dockyard0" } drop' in text
    # nothing left: the table is only deleted
    assert firewall.render("dockyard_t", [], []).count("\n") == 2


def test_hosts_files_name_peers_only_on_user_networks():
    nets = {"app": _net("app", "10.99.0.0/24"), "bridge": _net("bridge", "172.30.0.0/16")}
    a = _ctr("aaaa", "a", "app", "10.99.0.2", aliases=["db"])
    b = _ctr("bbbb", "b", "app", "10.99.0.3")
    c = _ctr("cccc", "c", "bridge", "172.30.0.2")
    entries = hosts.hosts_entries(a, nets, [a, b, c])
    assert entries == [("10.99.0.2", ["aaaa", "a", "db"]), ("10.99.0.3", ["b"])]
    assert hosts.hosts_entries(c, nets, [a, b, c]) == [("172.30.0.2", ["cccc"])]
    text = hosts.hosts_text(entries)
    assert text.startswith("127.0.0.1\tlocalhost\n") and "10.99.0.3\tb\n" in text
    assert [p.name for p in hosts.peers_of(b, nets, [a, b, c])] == ["a"]


def test_hosts_file_rewritten_in_place(tmp_path):
    nets = {"app": _net("app", "10.99.0.0/24")}
    a, b = _ctr("aaaa", "a", "app", "10.99.0.2"), _ctr("bbbb", "b", "app", "10.99.0.3")
    path = hosts.hosts_path(tmp_path, "aaaa")
    path.parent.mkdir(parents=True)
    path.write_text("old\n" * 100)
    inode = path.stat().st_ino
    hosts.rewrite_hosts(tmp_path, a, nets, [a, b])
    assert path.stat().st_ino == inode  # a bind mount pins the inode: never rename over it
    assert path.read_text().endswith("10.99.0.3\tb\n") and "old" not in path.read_text()
    hosts.rewrite_hosts(tmp_path, b, nets, [a, b])  # no file for b: nothing happens, no error


def test_resolv_conf_drops_loopback_servers(tmp_path):
    src = tmp_path / "resolv.conf"
    src.write_text("# comment\nnameserver 127.0.0.53\nsearch example.internal\noptions ndots:2\n")
    assert hosts.resolv_conf_text(src) == (
        "nameserver 8.8.8.8\nnameserver 8.8.4.4\nsearch example.internal\noptions ndots:2\n")
    src.write_text("nameserver 10.0.0.2\n")
    assert hosts.resolv_conf_text(src) == "nameserver 10.0.0.2\n"


def test_store_round_trip_and_rejects_hostile_ids(tmp_path):
    store = Store(tmp_path)
    with store.locked():
        store.save_network(_net())
        store.save_container(_ctr("abc123", "web", "app", "10.99.0.2",
                                  ports_=[PortBinding("tcp", 80, "", 8080)]))
    assert store.network("app").subnet == "10.99.0.0/29"
    assert store.container("abc123").ports[0].host_port == 8080
    assert store.network("../etc") is None
    with pytest.raises(NetworkError):
        store.container("../../etc/passwd")


def test_records_on_disk_keep_the_dataclass_shape(tmp_path):
    """The records were dataclasses written with asdict; their JSON must not change."""
    import json
    store = Store(tmp_path)
    net = _net()
    net.allocations["10.99.0.2"] = "abc123"
    c = _ctr("abc123", "web", "app", "10.99.0.2", aliases=["db"], ports_=[PortBinding("tcp", 80, "", 8080)])
    with store.locked():
        store.save_network(net)
        store.save_container(c)
    assert json.loads((store.networks_dir / "app.json").read_text()) == {
        "name": "app", "id": "f" * 64, "subnet": "10.99.0.0/29", "gateway": "10.99.0.1",
        "bridge": "dy-app", "created": "now", "allocations": {"10.99.0.2": "abc123"}}
    assert json.loads((store.endpoints_dir / "abc123.json").read_text()) == {
        "container_id": "abc123", "name": "web", "hostname": "abc123", "netns_path": "/x",
        "created": 0.0,
        "endpoints": [{"network": "app", "ifname": "eth0", "host_veth": "dyvabc123", "ip": "10.99.0.2",
                       "prefixlen": 24, "gateway": "10.99.0.1", "mac": ipam.mac_for("10.99.0.2"),
                       "aliases": ["db"]}],
        "ports": [{"proto": "tcp", "container_port": 80, "host_ip": "", "host_port": 8080}]}
    assert store.container("abc123") == c and store.network("app") == net
    assert Network("a", "i", "s", "g", "b", "c").allocations is not Network("a", "i", "s", "g", "b", "c").allocations
    spec = ports.PortSpec("tcp", 80)
    assert spec == ports.PortSpec("tcp", 80, "", 0) and len({spec, ports.PortSpec("tcp", 80)}) == 1
    with pytest.raises(AttributeError):
        spec.host_port = 1  # frozen
    with pytest.raises(TypeError):
        hash(c)  # mutable records are not hashable (as dataclasses)


def test_network_modules_import_no_dataclasses_openssl_or_subprocess():
    import subprocess
    import sys
    code = ("import sys, node.network.api, node.network.userproxy; "
            "print(sorted({'dataclasses', 'hashlib', '_hashlib', 'inspect', 'subprocess', 'selectors', 'socket'}"
            " & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_store_lock_serialises_threads_and_stops_forked_children(tmp_path):
    import os
    import threading
    import time

    store, order = Store(tmp_path), []

    def worker(name):
        with store.locked():
            order.append(f"{name}+")
            time.sleep(0.05)
            order.append(f"{name}-")

    threads = [threading.Thread(target=worker, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert order in (["a+", "a-", "b+", "b-"], ["b+", "b-", "a+", "a-"])
    with store.locked():
        with pytest.raises(RuntimeError, match="not reentrant"):
            with store.locked():
                pass
        pid = os.fork()
        if pid == 0:  # a library's fork child that wanders into our code must not wait
            with store.locked():
                os._exit(0)
            os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 70



def test_tools_run_without_subprocess():
    """links.run_tool / start_tool: input larger than a pipe, both outputs, exit status, only the
    three pipes open in the child, a missing tool, a timeout."""
    import os
    from node.network import links
    big = "x" * 300_000
    running = links.start_tool(["/bin/sh", "-c", "cat; echo done >&2; exit 3"], big)
    res = running.wait()
    assert (res.returncode, len(res.stdout), res.stderr) == (3, len(big), "done\n")
    keep_r, keep_w = os.pipe()
    os.dup2(keep_w, 201, inheritable=True)  # an inheritable descriptor of ours must not reach the tool
    try:
        fds = links.run_tool(["/bin/sh", "-c", "ls /proc/self/fd"]).stdout.split()
    finally:
        for fd in (keep_r, keep_w, 201):
            os.close(fd)
    assert "201" not in fds and {"0", "1", "2"} <= set(fds)
    with pytest.raises(FileNotFoundError):
        links.run_tool(["/nonexistent/tool"])
    with pytest.raises(TimeoutError):
        links.run_tool(["/bin/sleep", "5"], timeout=0.2)

"""Item 5 of issue #19: a port published on every host address answers on [::1] and [::] too, as
docker's does (its userland proxy), TCP (and UDP: listened on here, relayed in tests/node/network/test_userproxy.py); the proxy goes with the container. IPv4 stays
the kernel's DNAT. A real container on the default bridge."""
from __future__ import annotations

import socket
import time

import pytest

from tests.e2e.node_run_support import busybox_layer, dy  # noqa: F401
from tests.helpers import free_port, need, need_tool

pytestmark = [pytest.mark.root, pytest.mark.e2e]

SERVE = "mkdir -p /www && echo hello-v6 > /www/index.html && exec httpd -f -p 80 -h /www"


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _http_get(host: str, port: int, family: int) -> str:
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection((host, port), timeout=3) as s:
                assert s.family == family
                s.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
                s.shutdown(socket.SHUT_WR)                      # the proxy must pass the half-close on
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            if data:
                return data.decode()
        except OSError:
            pass
        assert time.monotonic() < deadline, f"nothing answered on {host}:{port}"
        time.sleep(0.2)


def test_published_port_answers_on_ipv6_loopback_and_any(dy):
    need(_has_ipv6_loopback(), "needs IPv6 on lo")
    need_tool("nft")
    from node.network import api
    tcp, udp = free_port(), free_port()
    try:
        cid = dy.out("run", "-d", "--name", "web", "-p", f"{tcp}:80", "-p", f"{udp}:81/udp", "busybox",
                     "sh", "-c", SERVE).strip()
        assert "hello-v6" in _http_get("::1", tcp, socket.AF_INET6)
        assert "hello-v6" in _http_get("127.0.0.1", tcp, socket.AF_INET)     # IPv4: the kernel's NAT
        # UDP is listened on too (busybox has no UDP server: the relay itself is tests/node/network/test_userproxy.py)
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            with pytest.raises(OSError):
                s.bind(("::", udp))
        ports = dy.inspect("web")["NetworkSettings"]["Ports"]
        assert {"HostIp": "::", "HostPort": str(tcp)} in ports["80/tcp"]
        assert {"HostIp": "0.0.0.0", "HostPort": str(tcp)} in ports["80/tcp"]
        assert f"[::]:{tcp}->80/tcp" in dy.out("ps", "--format", "{{.Ports}}")
        # `port` lists both, as docker's: "80/tcp -> 0.0.0.0:P" then "80/tcp -> [::]:P"
        lines = dy.out("port", "web").splitlines()
        assert f"80/tcp -> 0.0.0.0:{tcp}" in lines and f"80/tcp -> [::]:{tcp}" in lines, lines
        assert dy.out("port", "web", "80").splitlines() == [f"0.0.0.0:{tcp}", f"[::]:{tcp}"]
        pid = int((dy.root / "containers" / cid / "userproxy.pid").read_text().split()[0])
        dy.out("stop", "-t", "1", "web")
        with pytest.raises(OSError):
            socket.create_connection(("::1", tcp), timeout=2).close()
        assert not (dy.root / "containers" / cid / "userproxy.pid").exists()
        with pytest.raises(ProcessLookupError):
            import os
            os.kill(pid, 0)
        # a port bound to one IPv4 address is that address only: no proxy, as docker
        dy.out("run", "-d", "--name", "local", "-p", f"127.0.0.1:{tcp}:80", "busybox", "sh", "-c", SERVE)
        assert "hello-v6" in _http_get("127.0.0.1", tcp, socket.AF_INET)
        with pytest.raises(OSError):
            socket.create_connection(("::1", tcp), timeout=2).close()
    finally:
        ids = dy.out("ps", "-aq").split()
        if ids:
            dy("rm", "-f", *ids)
        api.purge(dy.root)


def test_a_port_taken_on_ipv6_is_refused_in_one_line(dy):
    need(_has_ipv6_loopback(), "needs IPv6 on lo")
    from node.network import api
    port = free_port()
    holder = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    holder.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    holder.bind(("::", port))
    holder.listen(1)
    try:
        r = dy("run", "-d", "--name", "clash", "-p", f"{port}:80", "busybox", "sleep", "60")
        assert r.returncode == 125 and f"Bind for [::]:{port} failed" in r.stderr and r.stderr.count("\n") == 1, \
            r.stderr
    finally:
        holder.close()
        ids = dy.out("ps", "-aq").split()
        if ids:
            dy("rm", "-f", *ids)
        api.purge(dy.root)


def _proxy_of(dy, cid: str) -> int:
    return int((dy.root / "containers" / cid / "userproxy.pid").read_text().split()[0])


def test_the_proxy_is_forked_by_the_resident_monitor_and_comes_back_with_a_restart(dy):
    """The IPv6 proxy is started by the container's resident monitor (node/engine/shim.py) once
    `run -d` has its OK, off the path to the first answer; a restart (each life a new shim, the
    ports bound again) gets a new one that answers."""
    need(_has_ipv6_loopback(), "needs IPv6 on lo")
    need_tool("nft")
    import os
    from node.network import api
    tcp = free_port()
    serve_a_while = "mkdir -p /www && echo hello-v6 > /www/index.html && httpd -p 80 -h /www && sleep 2"
    try:
        cid = dy.out("run", "-d", "--restart", "always", "-p", f"{tcp}:80", "busybox",
                     "sh", "-c", serve_a_while).strip()
        assert "hello-v6" in _http_get("::1", tcp, socket.AF_INET6)
        first = _proxy_of(dy, cid)
        import json
        state = json.loads((dy.root / "containers" / cid / "state.json").read_text())
        with open(f"/proc/{first}/stat") as f:
            assert int(f.read().rpartition(")")[2].split()[1]) == state["MonitorPid"]  # its parent
        with open(f"/proc/{first}/cmdline", "rb") as f:  # a fork of the resident program (after
            assert b"node.engine.shim" in f.read()     # the exec), not of the agent's fork
        deadline = time.monotonic() + 20
        while dy.inspect(cid)["RestartCount"] < 1 or not (dy.root / "containers" / cid / "userproxy.pid").exists() \
                or _proxy_of(dy, cid) == first:
            assert time.monotonic() < deadline, "no restart with a new proxy"
            time.sleep(0.1)
        assert "hello-v6" in _http_get("::1", tcp, socket.AF_INET6)
        with pytest.raises(ProcessLookupError):
            os.kill(first, 0)
    finally:
        ids = dy.out("ps", "-aq").split()
        if ids:
            dy("rm", "-f", *ids)
        api.purge(dy.root)

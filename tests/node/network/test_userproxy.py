"""node/network/userproxy.py against real sockets: a TCP and a UDP server on 127.0.0.1 stand for
the container; the proxy listens on [::] and relays, and stop() leaves nothing running."""
from __future__ import annotations

import os
import socket
import threading

import pytest

from node.network import userproxy
from node.network.state import PortBinding
from tests.helpers import free_port, need


def _ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _tcp_upper_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve():
        conn, _ = srv.accept()
        data = b""
        while chunk := conn.recv(65536):       # until the client's half-close
            data += chunk
        conn.sendall(data.upper())
        conn.close()
    threading.Thread(target=serve, daemon=True).start()
    return srv


def _udp_echo_server():
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))

    def serve():
        for _ in range(2):
            data, addr = srv.recvfrom(4096)
            srv.sendto(b"pong-" + data, addr)
    threading.Thread(target=serve, daemon=True).start()
    return srv


def test_proxy_relays_tcp_with_half_close_and_udp_then_stops(tmp_path):
    need(_ipv6(), "needs IPv6 on lo")
    tcp_srv, udp_srv = _tcp_upper_server(), _udp_echo_server()
    tcp_port, udp_port = free_port(), free_port()
    bindings = [PortBinding("tcp", tcp_srv.getsockname()[1], "", tcp_port),
                PortBinding("udp", udp_srv.getsockname()[1], "", udp_port),
                PortBinding("tcp", 9, "127.0.0.1", free_port())]          # one IPv4 address: not ours
    served = userproxy.start(tmp_path, bindings, "127.0.0.1")
    try:
        assert served == bindings[:2]
        with socket.create_connection(("::1", tcp_port), timeout=5) as c:
            c.sendall(b"x" * 200_000)
            c.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := c.recv(65536):
                got += chunk
        assert got == b"X" * 200_000
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as u:
            u.settimeout(5)
            for word in (b"a", b"b"):              # the second reuses the client's relay socket
                u.sendto(word, ("::1", udp_port))
                assert u.recvfrom(4096)[0] == b"pong-" + word
    finally:
        pid = int((tmp_path / userproxy.PID_FILE).read_text().split()[0])
        userproxy.stop(tmp_path)
        tcp_srv.close()
        udp_srv.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not (tmp_path / userproxy.PID_FILE).exists()
    with pytest.raises(OSError):
        socket.create_connection(("::1", tcp_port), timeout=2).close()


def test_a_taken_ipv6_port_is_a_proxy_error(tmp_path):
    need(_ipv6(), "needs IPv6 on lo")
    holder = socket.socket(socket.AF_INET6)
    holder.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    holder.bind(("::", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        with pytest.raises(userproxy.ProxyError, match=rf"Bind for \[::\]:{port} failed: address already in use"):
            userproxy.start(tmp_path, [PortBinding("tcp", 80, "", port)], "127.0.0.1")
        assert not (tmp_path / userproxy.PID_FILE).exists()
    finally:
        holder.close()

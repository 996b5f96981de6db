"""Published ports over IPv6: a userland proxy, as docker's docker-proxy, for `-p HOST:CONTAINER`
(every host address) on `[::]:HOST` and so `[::1]:HOST`.

Why a proxy here when IPv4 is kernel DNAT (firewall.py): containers' networks are IPv4 only, and
the kernel cannot translate a connection from one family to the other; docker answers `::`
the same way (docker-proxy, per port). One process per container that publishes ports, forked
by whoever starts the container (its monitor), serving all its ports with one asyncio loop, and
gone with the container: it dies with its parent (PR_SET_PDEATHSIG) and `stop()` kills it at
teardown from any process (its pid and start time are in the container's record dir).

The listening sockets are bound by the starter while it prepares the container (listen), so a
port taken on `::` is an error of `run`, and a client that connects from then on is queued in
the listen backlog, not refused, until the proxy serves it. The proxy itself (spawn) is forked
once the container runs: by the detached monitor's resident program (node/engine/shim.py) after
it told the agent OK, the listeners handed to it across its exec (handover) — its start-up
(asyncio: 30-80 ms of CPU) then no longer competes with the container's on a small machine —
or by the attached `run` before it starts the init. A host without IPv6 gets no proxy (as docker)."""
from __future__ import annotations

import _socket  # the C type in the starter (socket.py's enums cost ~3 ms); the child wraps them
import contextlib
import errno
import os
import signal

from node.network import proxypid
from node.network.proxypid import PID_FILE

UDP_IDLE_SECONDS = 90  # docker-proxy's UDP connection timeout


class ProxyError(Exception):
    pass


def start(record_dir, bindings, target_ip: str) -> list:
    """Listen on [::] for each binding published on every address and fork the proxy that serves
    them; returns the bindings served (listen, then spawn)."""
    listeners, served = listen(bindings)
    if listeners:
        spawn(record_dir, listeners, target_ip)
    return served


def listen(bindings) -> tuple[list, list]:
    """The starter's half: (listeners, bindings served). Each listener is (proto, socket,
    container port), bound and listening; whoever holds them passes them to spawn() (or closes
    them). Raises ProxyError, with nothing left open, if a port is taken on [::]."""
    listeners, served = [], []
    try:
        for b in bindings:
            if b.host_ip:  # one IPv4 address: the kernel's DNAT alone serves it
                continue
            sock = _listen(b.proto, b.host_port)
            if sock is None:
                break  # no IPv6 on this host
            listeners.append((b.proto, sock, b.container_port))
            served.append(b)
    except BaseException:
        close(listeners)
        raise
    return listeners, served


def close(listeners) -> None:
    for _proto, sock, _port in listeners:
        sock.close()


def spawn(record_dir, listeners, target_ip: str) -> int:
    """Fork the proxy serving ``listeners`` (closed here, the child has them); its pid file is
    written before this returns, so stop() finds it."""
    try:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _child_main(str(record_dir), listeners, target_ip)
            except BaseException:  # noqa: BLE001 - never unwind into the starter's code
                code = 1
            finally:
                os._exit(code)
        proxypid.write(str(record_dir), pid)
        return pid
    finally:
        close(listeners)


def handover(listeners, target_ip: str) -> str:
    """The listeners as one word for a program this process execs (the fds made inheritable):
    ``TARGET_IP/PROTO:CONTAINER_PORT:FD,...``; serve_handed_over() is the other end."""
    parts = []
    for proto, sock, port in listeners:
        os.set_inheritable(sock.fileno(), True)
        parts.append(f"{proto}:{port}:{sock.fileno()}")
    return f"{target_ip}/{','.join(parts)}"


def handed_over_fds(word: str) -> list[int]:
    return [int(part.rsplit(":", 1)[1]) for part in word.partition("/")[2].split(",") if part]


def serve_handed_over(record_dir: str, word: str) -> None:
    """In a child forked for it: serve the listeners a handover() word names (never returns)."""
    target_ip, _, parts = word.partition("/")
    listeners = []
    for part in parts.split(","):
        proto, port, fd = part.split(":")
        kind = _socket.SOCK_STREAM if proto == "tcp" else _socket.SOCK_DGRAM
        listeners.append((proto, _socket.socket(_socket.AF_INET6, kind, 0, int(fd)), int(port)))
    _child_main(record_dir, listeners, target_ip)


def _listen(proto: str, port: int) -> _socket.socket | None:
    kind = _socket.SOCK_STREAM if proto == "tcp" else _socket.SOCK_DGRAM
    try:
        sock = _socket.socket(_socket.AF_INET6, kind)
    except OSError:
        return None
    try:
        sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 1)  # IPv4 stays the kernel's
        if kind == _socket.SOCK_STREAM:
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        sock.bind(("::", port))
        if kind == _socket.SOCK_STREAM:
            sock.listen(128)
        sock.setblocking(False)
        return sock
    except OSError as e:
        sock.close()
        if e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            return None
        raise ProxyError(f"Bind for [::]:{port} failed: {e.strerror.lower()}") from None


def stop(record_dir) -> None:
    """Kill the container's proxy if it is still the process that was started."""
    path = os.path.join(record_dir, PID_FILE)
    try:
        with open(path) as f:
            pid_text, start = f.read().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return
    if _start_time(pid) == start:
        from node.forkguard import kill_and_reap
        kill_and_reap(pid)  # not our child (stopped from another process): its parent reaps it
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


_start_time = proxypid.start_time


def _child_main(record_dir: str, listeners, target_ip: str) -> None:
    import ctypes
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: gone with the monitor
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    log = os.open(os.path.join(record_dir, "monitor.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    for fd, src in ((0, devnull), (1, log), (2, log)):
        os.dup2(src, fd)
    keep = {sock.fileno() for _p, sock, _c in listeners}
    for name in os.listdir("/proc/self/fd"):  # never hold the container's stdio pipes open
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    # Importing asyncio is 30-80 ms of CPU, while our starter (the monitor) creates and starts
    # the container on the same 2 cores: done at a lower priority, so it takes what the starter
    # leaves. Clients are not refused meanwhile (the sockets listen already); serving is done
    # at the usual priority again.
    usual = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, min(usual + 10, 19))
    except OSError:
        usual = None
    import asyncio
    import socket
    if usual is not None:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, usual)
        except OSError:  # without CAP_SYS_NICE the nicer value stays: the proxy still serves
            pass
    listeners = [(proto, socket.socket(fileno=sock.detach()), port) for proto, sock, port in listeners]
    asyncio.run(_serve(listeners, target_ip))


async def _serve(listeners, target_ip: str) -> None:
    import asyncio
    loop = asyncio.get_running_loop()
    for proto, sock, port in listeners:
        if proto == "tcp":
            await asyncio.start_server(lambda r, w, p=port: _tcp_client(r, w, (target_ip, p)), sock=sock)
        else:
            await loop.create_datagram_endpoint(lambda p=port: _UdpFront((target_ip, p)), sock=sock)
    await asyncio.Event().wait()


async def _tcp_client(reader, writer, target) -> None:
    import asyncio
    try:
        up_reader, up_writer = await asyncio.open_connection(*target)
    except OSError:
        writer.close()
        return
    await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
    for w in (up_writer, writer):
        w.close()


async def _pump(reader, writer) -> None:
    """One direction, half-closed at its EOF (a client that shuts down writing still gets its answer)."""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


class _UdpFront:
    """[::]:PORT for UDP: one connected socket to the container per client address, dropped
    after UDP_IDLE_SECONDS without traffic."""

    def __init__(self, target) -> None:
        self.target = target
        self.clients: dict = {}

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        import asyncio
        back = self.clients.get(addr)
        if back is not None:
            back.touch()
            if back.transport is not None:
                back.transport.sendto(data)
            else:
                back.pending.append(data)
            return
        back = _UdpBack(self, addr)
        back.pending.append(data)
        self.clients[addr] = back
        asyncio.ensure_future(asyncio.get_running_loop().create_datagram_endpoint(
            lambda: back, remote_addr=self.target))

    def error_received(self, exc) -> None:
        pass

    def connection_lost(self, exc) -> None:
        pass


class _UdpBack:
    def __init__(self, front: _UdpFront, addr) -> None:
        import asyncio
        self.front, self.addr, self.pending, self.transport = front, addr, [], None
        self.timer = asyncio.get_running_loop().call_later(UDP_IDLE_SECONDS, self.close)

    def touch(self) -> None:
        self.timer.cancel()
        import asyncio
        self.timer = asyncio.get_running_loop().call_later(UDP_IDLE_SECONDS, self.close)

    def close(self) -> None:
        self.front.clients.pop(self.addr, None)
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport) -> None:
        self.transport = transport
        for data in self.pending:
            transport.sendto(data)
        self.pending = []

    def datagram_received(self, data: bytes, _addr) -> None:
        self.touch()
        self.front.transport.sendto(data, self.addr)

    def error_received(self, exc) -> None:
        pass

    def connection_lost(self, exc) -> None:
        self.front.clients.pop(self.addr, None)

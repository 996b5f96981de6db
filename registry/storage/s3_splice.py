"""Streamed blob GETs moved from the S3 socket to the client's socket by the kernel (splice).

Why: on a 256 MiB pull through the buffered path (s3_reads.py), 49 % of the registry's CPU was
the kernel copying bytes into Python's buffers (recv) and out of them again (send), and most of
the rest the Python around it (PROFILE.md section 17). ``splice(2)`` moves page references from
the S3 connection into a pipe and from the pipe into the client's connection: the bytes never
enter user space, and one call moves up to a pipe's worth (1 MiB), so there is no per-chunk
Python either. The event loop only hands the read to a worker thread and waits for its end.

When: a plain-http S3 endpoint without a proxy (splice cannot see through TLS; s3.py decides),
a client connection without TLS, a free worker, and a read of at least ``SPLICE_MIN`` bytes.
The worker gives the read back when the client stops taking bytes for ``STALL`` seconds (a slow
client must not hold a thread for the length of its download): the caller writes what was
already taken from S3 and continues on the buffered path from there. So at most ``THREADS``
reads are spliced at once, each holding one pipe (kernel memory, ``PIPE_BYTES``) and no buffer.

The client socket's send queue is cut to what its path needs (``fit_send_queue``): with the
kernel's autotuned 4 MiB, a spliced byte waited behind megabytes of others and reached the
client's copy cache-cold (PROFILE.md section 30).

S3 faults: connection errors, timeouts and 5xx/429 answers are retried with backoff, each retry
a ranged GET from the first byte the client has not been sent (storage.retries, like botocore's
standard mode); 404 is Missing. A fault after the 200 went out can only end the connection,
like on every other streamed path.
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import functools
import os
import select
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .driver import StorageUnavailable

if TYPE_CHECKING:
    from .s3 import S3Driver

SPLICE_MIN = 1 << 20      # smaller reads: one GetObject on the event loop costs less than a thread hand-off
THREADS = 8               # reads spliced at once in the process; more wait on the buffered path
PIPE_BYTES = 1 << 20      # per worker; Linux's default pipe-max-size
STALL = 1.0               # seconds a client may refuse bytes before the read goes back to the loop
HEADER_LIMIT = 64 << 10
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)
_RETRY_STATUS = {429, 500, 502, 503, 504}
SEND_QUEUE_MIN = 128 << 10   # SO_SNDBUF floor for a spliced GET (the kernel doubles it for its bookkeeping)
PATH_CEILING = 4e9           # bytes/s: the fastest client path the send queue is sized for
_TCP_INFO_MIN_RTT = 148      # offset of tcpi_min_rtt (u32, microseconds) in struct tcp_info


def available() -> bool:
    return hasattr(os, "splice")


def fit_send_queue(sock: Any) -> int:
    """Sizes the client socket's send buffer to its bandwidth-delay product at PATH_CEILING
    (lowest RTT seen x ceiling, at least SEND_QUEUE_MIN), when that is below what autotuning
    may grow it to; returns the value set (0: left alone).

    Why: spliced bytes are never touched by the registry, so the client's receive copy is the
    first to read them since S3's server wrote them. With the autotuned send queue (up to
    net.ipv4.tcp_wmem's 4 MiB) plus the S3 socket's, megabytes sat in between and that copy
    ran cache-cold: the client spent ~1.7x the CPU per byte it does behind distribution
    (perf, section 30). A queue of one BDP keeps any path full (a 20 ms path gets no cap: its
    BDP is above what autotuning gives) and a local client's bytes hot. Setting SO_SNDBUF ends
    autotuning for this connection; later responses on it keep the BDP-sized queue."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_MIN_RTT + 4)
        if len(info) < _TCP_INFO_MIN_RTT + 4:
            return 0
        min_rtt_us = struct.unpack_from("I", info, _TCP_INFO_MIN_RTT)[0]
        if not min_rtt_us:            # no RTT sample yet: nothing to size by
            return 0
        want = max(SEND_QUEUE_MIN, int(PATH_CEILING * min_rtt_us / 1e6))
        if 2 * want >= _autotune_max():   # the kernel doubles it: no smaller than autotuning's reach
            return 0
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, want)
        return want
    except (OSError, AttributeError):
        return 0


@functools.cache
def _autotune_max() -> int:
    """The most the kernel's send-buffer autotuning may give a TCP socket (tcp_wmem's max)."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            return int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 << 20


class _Retry(Exception):
    """An S3 fault worth another ranged GET (after backoff)."""


class _Stop(Exception):
    """The request that asked for this read was cancelled."""


class SpliceSender:
    """Splices ranged GETs of presigned URLs into client sockets on worker threads."""

    def __init__(self, endpoint: str, timeout: float, attempts: int, threads: int = THREADS) -> None:
        parts = urlsplit(endpoint)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.timeout, self.attempts = timeout, attempts
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="s3-splice")
        self.idle = threads          # touched on the event loop only
        self.local = threading.local()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    # -- event loop side ------------------------------------------------------------------------
    async def send(self, s3: "S3Driver", request: Any, resp: Any, key: str, offset: int, length: int) -> int:
        """Sends bytes [offset, offset+length) of ``key`` as ``resp``'s body, straight to the
        client; returns how many were sent (0: this read cannot be spliced; fewer than
        ``length``: the client stalled). ``resp`` must be prepared and have no body written."""
        transport = request.transport
        writer = getattr(resp, "_payload_writer", None)
        if (self.idle == 0 or transport is None or transport.is_closing() or writer is None
                or transport.get_extra_info("sslcontext") is not None
                or not hasattr(writer, "send_headers")):
            return 0
        sock = transport.get_extra_info("socket")
        if sock is None:
            return 0
        writer.send_headers()
        # The headers the kernel did not take at once must leave before any spliced byte.
        waited = 0.0
        while transport.get_write_buffer_size():
            if waited > STALL or transport.is_closing():
                return 0
            await asyncio.sleep(0.005)
            waited += 0.005
        url = await s3.client.generate_presigned_url("get_object", Params={"Bucket": s3.bucket, "Key": key},
                                                     ExpiresIn=3600)
        parts = urlsplit(url)
        target = parts.path + ("?" + parts.query if parts.query else "")
        fit_send_queue(sock)
        client_fd = os.dup(sock.fileno())   # ours: the transport closing it cannot reuse the number
        stop = threading.Event()
        self.idle -= 1
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self.pool, self._splice, parts.netloc, target, client_fd, offset, length, stop)
        try:
            try:
                sent, leftover = await asyncio.shield(job)
            except asyncio.CancelledError:
                stop.set()
                with contextlib.suppress(BaseException):
                    await job          # never close the fd under a running worker
                raise
        finally:
            os.close(client_fd)
            self.idle += 1
        if leftover:
            await resp.write(leftover)
        return sent + len(leftover)

    # -- worker side ----------------------------------------------------------------------------
    def _pipe(self) -> tuple[int, int, int]:
        pipe = getattr(self.local, "pipe", None)
        if pipe is None:
            r, w = os.pipe()
            size = 64 << 10
            with contextlib.suppress(OSError):
                size = fcntl.fcntl(w, _F_SETPIPE_SZ, PIPE_BYTES)
            pipe = self.local.pipe = (r, w, size)
        return pipe

    def _connection(self) -> tuple[socket.socket, bool]:
        """This worker's keep-alive connection to S3, and whether it was used before."""
        sock = getattr(self.local, "sock", None)
        if sock is not None:
            return sock, True
        sock = socket.create_connection(self.address, timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.local.sock = sock
        return sock, False

    def _drop_connection(self) -> None:
        sock = getattr(self.local, "sock", None)
        self.local.sock = None
        if sock is not None:
            sock.close()

    def _splice(self, netloc: str, target: str, client_fd: int, offset: int, length: int,
                stop: threading.Event) -> tuple[int, bytes]:
        """Returns (bytes spliced to the client, bytes taken from S3 the client has not had yet:
        only when it stalled, for the caller to write)."""
        pipe_r, pipe_w, pipe_size = self._pipe()
        sent, faults = 0, 0
        try:
            while sent < length:
                if stop.is_set():
                    raise _Stop()
                try:
                    sock, reused = self._connection()
                    body, keep = self._begin(sock, netloc, target, offset + sent, length - sent, reused)
                    while body:
                        n = self._into_pipe(sock, pipe_w, min(body, pipe_size), stop)
                        body -= n
                        left = self._out_of_pipe(pipe_r, client_fd, n, stop)
                        sent += n - left
                        if left:                       # the client stalled: give the read back
                            self._drop_connection()    # its unread body makes it unusable
                            return sent, self._read_pipe(pipe_r, left)
                    if not keep:
                        self._drop_connection()
                except (_Retry, OSError) as e:
                    # On the client's side (EPIPE, reset) the request is over; on S3's, a fault.
                    self._drop_connection()
                    if getattr(e, "client_side", False):
                        raise ConnectionResetError("client went away during a spliced blob GET") from None
                    faults += 1
                    if faults >= self.attempts:
                        raise StorageUnavailable(f"S3 GetObject failed: {str(e) or e.__class__.__name__}") from None
                    time.sleep(0.05 * 2 ** (faults - 1))
                except BaseException:
                    self._drop_connection()
                    raise
            return sent, b""
        except BaseException:
            self._drop_pipe()   # it may hold bytes meant for this client: never for the next one
            raise

    def _drop_pipe(self) -> None:
        pipe = getattr(self.local, "pipe", None)
        self.local.pipe = None
        if pipe is not None:
            os.close(pipe[0])
            os.close(pipe[1])

    def _begin(self, sock: socket.socket, netloc: str, target: str, start: int, length: int,
               reused: bool) -> tuple[int, bool]:
        """Sends the ranged GET and consumes the answer's head, leaving the body in the socket;
        returns (body length, whether the connection stays open after it)."""
        from .s3 import Missing

        request = (f"GET {target} HTTP/1.1\r\nHost: {netloc}\r\nRange: bytes={start}-{start + length - 1}\r\n"
                   "Accept-Encoding: identity\r\n\r\n").encode("latin-1")
        try:
            sock.sendall(request)
            head = self._read_head(sock)
        except (OSError, _Retry) as e:
            if reused:                      # the server closed an idle keep-alive connection
                self._drop_connection()
                sock, _ = self._connection()
                sock.sendall(request)
                head = self._read_head(sock)
            else:
                raise _Retry(str(e) or e.__class__.__name__) from None
        status, headers = _parse_head(head)
        size = int(headers.get("content-length", "-1"))
        keep = headers.get("connection", "").lower() != "close"
        if status in (200, 206) and "chunked" not in headers.get("transfer-encoding", "") and size == length:
            first = headers.get("content-range", "bytes 0-").split(" ")[-1].split("-")[0]
            if (status == 206 and first == str(start)) or (status == 200 and start == 0):
                return size, keep
            raise StorageUnavailable(f"S3 GetObject: unexpected range {headers.get('content-range')!r}")
        if status == 404:
            raise Missing("NoSuchKey")
        if status in _RETRY_STATUS:
            raise _Retry(f"{status}")
        raise StorageUnavailable(f"S3 GetObject failed: {status}")

    @staticmethod
    def _read_head(sock: socket.socket) -> bytes:
        """The status line and headers, consumed without taking a byte of the body (peek for
        the blank line, then receive exactly up to it)."""
        head = bytearray()
        while True:
            data = sock.recv(HEADER_LIMIT, socket.MSG_PEEK)
            if not data:
                raise _Retry("connection closed before the answer")
            tail = bytes(head[-3:])
            end = (tail + data).find(b"\r\n\r\n")
            if end >= 0:
                head += _recv_exactly(sock, end + 4 - len(tail))
                return bytes(head)
            head += _recv_exactly(sock, len(data))
            if len(head) > HEADER_LIMIT:
                raise StorageUnavailable("S3 GetObject: answer head too long")

    def _into_pipe(self, sock: socket.socket, pipe_w: int, want: int, stop: threading.Event) -> int:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                n = os.splice(sock.fileno(), pipe_w, want, flags=_FLAGS)
            except BlockingIOError:
                _wait(sock.fileno(), select.POLLIN, deadline, stop, socket.timeout("S3 read timed out"))
                continue
            if n == 0:
                raise ConnectionResetError("S3 closed the connection mid-body")
            return n

    @staticmethod
    def _out_of_pipe(pipe_r: int, client_fd: int, n: int, stop: threading.Event) -> int:
        """Splices n bytes from the pipe to the client; returns how many are left in the pipe
        (non-zero only when the client stalled)."""
        while n:
            try:
                n -= os.splice(pipe_r, client_fd, n, flags=_FLAGS)
            except BlockingIOError:
                if not _wait(client_fd, select.POLLOUT, time.monotonic() + STALL, stop, None):
                    return n
            except OSError as e:
                if e.errno in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.EBADF):
                    err = ConnectionResetError(e.errno, e.strerror)
                    err.client_side = True    # type: ignore[attr-defined]
                    raise err from None
                raise
        return 0

    @staticmethod
    def _read_pipe(pipe_r: int, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            out += os.read(pipe_r, n - len(out))
        return bytes(out)


def _wait(fd: int, events: int, deadline: float, stop: threading.Event, expired: Exception | None) -> bool:
    """Waits until ``fd`` is ready, checking ``stop`` every 0.2 s; False (or ``expired`` raised)
    at the deadline."""
    poller = select.poll()
    poller.register(fd, events | select.POLLERR | select.POLLHUP)
    while True:
        if stop.is_set():
            raise _Stop()
        left = deadline - time.monotonic()
        if left <= 0:
            if expired is not None:
                raise expired
            return False
        if poller.poll(min(left, 0.2) * 1000):
            return True


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        data = sock.recv(n - len(out))
        if not data:
            raise _Retry("connection closed in the answer's head")
        out += data
    return bytes(out)


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        raise _Retry(f"bad status line {lines[0][:40]!r}") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return status, headers

"""Raw streams: hijacked connections (attach, exec start) and docker's multiplexed framing.

Hijack: the client sends ``Connection: Upgrade`` + ``Upgrade: tcp``; the daemon answers
``101 UPGRADED`` and from then on the connection is a raw byte pipe both ways (stdin in, output
out), half-closed by the client when its stdin ends. aiohttp cannot hand such a connection
over, so it is taken from under it: the socket is dup()ed, aiohttp's transport stops reading,
and the dup is driven with the event loop's sock_* calls. When the stream ends both are shut.
A client that asks without the Upgrade headers gets ``200 OK`` and the same raw stream, as the
daemon does.

Frames (no TTY): an 8-byte header [stream, 0, 0, 0, size as uint32 big-endian] then ``size``
bytes; stream 0 stdin, 1 stdout, 2 stderr. With a TTY the output is the terminal's bytes, raw.
"""
from __future__ import annotations

import asyncio
import os
import socket
import struct

from aiohttp import web

from node.api.versions import common_headers

STDOUT, STDERR = 1, 2
RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"
STREAM_NUMBER = {"stdout": STDOUT, "stderr": STDERR}


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


class Hijacked:
    """A connection taken over from aiohttp after the 101 (or 200) status line."""

    def __init__(self, sock: socket.socket, transport) -> None:
        self.sock = sock
        self._transport = transport
        self.closed = False

    async def send(self, data: bytes) -> bool:
        """False once the client is gone."""
        if self.closed or not data:
            return not self.closed
        try:
            await asyncio.get_running_loop().sock_sendall(self.sock, data)
            return True
        except OSError:
            self.closed = True
            return False

    async def recv(self, size: int = 65536) -> bytes:
        """b"" at the client's half-close (or when it is gone)."""
        try:
            return await asyncio.get_running_loop().sock_recv(self.sock, size)
        except OSError:
            return b""

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()
        self.closed = True
        if self._transport is not None:
            self._transport.abort()


async def hijack(request: web.Request, content_type: str = RAW_STREAM) -> Hijacked:
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("the client went away")
    raw = transport.get_extra_info("socket")
    sock = socket.socket(fileno=os.dup(raw.fileno()))
    sock.setblocking(False)
    transport.pause_reading()
    upgrade = request.headers.get("Upgrade", "").lower() == "tcp"
    head = ["HTTP/1.1 101 UPGRADED" if upgrade else "HTTP/1.1 200 OK", f"Content-Type: {content_type}"]
    if upgrade:
        head += ["Connection: Upgrade", "Upgrade: tcp"]
    head += [f"{k}: {v}" for k, v in common_headers().items()]
    hijacked = Hijacked(sock, transport)
    await hijacked.send(("\r\n".join(head) + "\r\n\r\n").encode())
    return hijacked


def done_response() -> web.StreamResponse:
    """What a hijacking handler returns: nothing more is written on the connection (aborted)."""
    return web.Response(status=204)


async def stream_response(request: web.Request, content_type: str) -> web.StreamResponse:
    """A plain chunked response for output that is not hijacked (logs, pull progress...)."""
    response = web.StreamResponse(status=200, headers={"Content-Type": content_type})
    response.enable_chunked_encoding()
    await response.prepare(request)
    return response


async def pump_fd_to(fd: int, write, stream: int | None) -> None:
    """Copy a pipe to ``write`` (framed as ``stream`` unless None) until EOF; closes ``fd``."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                os.fdopen(fd, "rb", buffering=0))
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                return
            if not await write(frame(stream, data) if stream is not None else data):
                return
    finally:
        transport.close()


async def pump_to_fd(hijacked: Hijacked, fd: int) -> None:
    """Copy what the client sends (stdin) into a pipe until the client's half-close; closes ``fd``."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    try:
        while True:
            data = await hijacked.recv()
            if not data:
                return
            while data:
                try:
                    n = os.write(fd, data)
                    data = data[n:]
                except BlockingIOError:
                    waiter = loop.create_future()
                    loop.add_writer(fd, waiter.set_result, None)
                    try:
                        await waiter
                    finally:
                        loop.remove_writer(fd)
                except (BrokenPipeError, OSError):
                    return
    finally:
        os.close(fd)

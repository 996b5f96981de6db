"""The loopback ceiling: the simplest HTTP server that moves the same bytes as a registry.

`python -m bench.staticserver PORT FILE` serves, on 127.0.0.1:PORT, with asyncio in one process:
  GET  /blob  -> FILE with os.sendfile (what a registry does for a blob download at best)
  GET  /small -> a fixed 1 KiB body (a manifest-sized answer with no lookup behind it)
  PUT/PATCH/POST anything -> reads Content-Length bytes into a reused buffer, discards, 201
It does no hashing, no disk writes and no bookkeeping, so each number it reaches is what the
machine's loopback plus one Python event loop allow, an upper bound for a registry in Python.
"""
from __future__ import annotations

import asyncio
import os
import socket
import sys

SMALL = b"x" * 1024


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, blob: str) -> None:
    loop = asyncio.get_running_loop()
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:] if l)}
            length = int(headers.get("content-length", "0"))
            while length > 0:  # discard the body as fast as the socket gives it
                chunk = await reader.read(min(length, 1 << 20))
                if not chunk:
                    return
                length -= len(chunk)
            if method == "GET" and path.startswith("/blob"):
                size = os.path.getsize(blob)
                writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n"
                             "Content-Type: application/octet-stream\r\n\r\n".encode())
                await writer.drain()
                with open(blob, "rb") as f:
                    await loop.sendfile(writer.transport, f, 0, size)
            elif method == "GET":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/json\r\n\r\n%s"
                             % (len(SMALL), SMALL))
            else:
                writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nLocation: /upload\r\n\r\n")
            await writer.drain()
    finally:
        writer.close()


async def main(port: int, blob: str) -> None:
    server = await asyncio.start_server(lambda r, w: handle(r, w, blob), "127.0.0.1", port,
                                        limit=1 << 20, reuse_address=True)
    for sock in server.sockets:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))

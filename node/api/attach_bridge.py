"""A hijacked attach connection bridged to a container's attach socket (node/engine/attach.py):
the client's bytes become STDIN frames (with a TTY watched for the detach keys, docker's
default ctrl-p,ctrl-q or the request's detachKeys), its half-close a CLOSE_STDIN; the monitor's
STDOUT/STDERR frames go back raw with a TTY, else in docker's multiplexed framing.

Ends when the monitor closes the socket (the container exited), the client leaves, or the
detach keys are typed (the container keeps running)."""
from __future__ import annotations

import asyncio

from node.api import backend
from node.api.streams import frame


async def bridge(hijacked, sock, tty: bool, stdin: bool, scanner) -> None:
    proto = backend.attach_frames()
    loop = asyncio.get_running_loop()
    sock.setblocking(False)

    async def feed() -> bool:
        """True when the client detached; False at its half-close (output goes on)."""
        while True:
            data = await hijacked.recv()
            if not stdin:
                if not data:
                    return False
                continue
            if not data:
                await loop.sock_sendall(sock, proto.encode(proto.CLOSE_STDIN))
                return False
            data, detached = scanner.feed(data) if scanner else (data, False)
            if data:
                await loop.sock_sendall(sock, proto.encode(proto.STDIN, data))
            if detached:
                return True

    async def pump() -> None:
        frames = proto.FrameReader()
        while True:
            data = await loop.sock_recv(sock, 65536)
            if not data:
                return
            for kind, payload in frames.feed(data):
                if kind in (proto.STDOUT, proto.STDERR):
                    if not await hijacked.send(payload if tty else frame(kind, payload)):
                        return

    out = asyncio.create_task(pump())
    inp = asyncio.create_task(feed())
    try:
        done, _ = await asyncio.wait({out, inp}, return_when=asyncio.FIRST_COMPLETED)
        if inp in done and not inp.cancelled() and inp.exception() is None and not inp.result():
            await out  # stdin ended: the output still comes, until the exit
    except (OSError, ValueError):
        pass
    finally:
        for task in (out, inp):
            task.cancel()
        await asyncio.gather(out, inp, return_exceptions=True)
        sock.close()

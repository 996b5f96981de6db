"""The launcher: a single-threaded process, forked when the engine starts (before the event
loop or any thread exists), that forks a worker for each request which must fork on its own —
starting a container (the engine's detached monitor) and exec.

Why: fork() in a process with threads copies locks that other threads hold at that instant
(the network store's, logging's, the import machinery's) and the child may wait on them forever.
The server runs blocking engine calls in threads, so it never forks itself; the launcher has
one thread and nothing else to do.

Protocol, on a SOCK_SEQPACKET socketpair (one message per request, fds by SCM_RIGHTS):
    server -> launcher   JSON {"op": NAME, "args": {...}} with fds [reply, *extra]
    launcher             forks a worker; the worker dup2()s extra fds onto 0, 1, 2 (exec),
                         runs WORKER_OPS[NAME](**args) and writes its JSON result to `reply`:
                         {"ok": value} or {"error": message, "status": http status}
The launcher exits when the server's end closes (EOF), leaving running monitors alone.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import threading

MAX_MESSAGE = 1 << 16


class Launcher:
    def __init__(self, ops: dict) -> None:
        """``ops``: name -> function(**args) run in a forked worker; its return value must be JSON."""
        self._ops = ops
        self._sock: socket.socket | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def fork(self, close: list[int] = ()) -> None:
        """Start the launcher process; ``close``: fds of ours it must not keep."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            parent.close()
            for fd in close:
                os.close(fd)
            try:
                self._serve(child)
            finally:
                os._exit(0)
        child.close()
        self._sock, self._pid = parent, pid

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._pid:
            try:
                os.waitpid(self._pid, 0)
            except ChildProcessError:
                pass
            self._pid = 0

    async def call(self, op: str, args: dict, fds: tuple[int, ...] = ()) -> dict:
        """Run ``op`` in a worker; returns its result document. ``fds`` are passed, not closed."""
        return await self.result(self.send(op, args, fds))

    def send(self, op: str, args: dict, fds: tuple[int, ...] = ()) -> int:
        """Hand ``op`` to a worker now; returns the fd its result will arrive on (see result())."""
        assert self._sock is not None, "launcher not started"
        reply_r, reply_w = os.pipe()
        try:
            message = json.dumps({"op": op, "args": args}).encode()
            with self._lock:
                socket.send_fds(self._sock, [message], [reply_w, *fds])
        except BaseException:
            os.close(reply_r)
            raise
        finally:
            os.close(reply_w)
        return reply_r

    @staticmethod
    async def result(reply_r: int) -> dict:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                    os.fdopen(reply_r, "rb", buffering=0))
        try:
            data = await reader.read()
        finally:
            transport.close()
        if not data:
            return {"error": "the worker exited without a result", "status": 500}
        return json.loads(data)

    # -- in the launcher process -------------------------------------------------------------

    def _serve(self, sock: socket.socket) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server's Ctrl-C is for the server
        while True:
            try:
                message, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 8)
            except InterruptedError:
                continue
            if not message:
                return
            self._reap()
            pid = os.fork()
            if pid == 0:
                sock.close()
                self._work(message, fds)
            for fd in fds:
                os.close(fd)

    @staticmethod
    def _reap() -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    def _work(self, message: bytes, fds: list[int]) -> None:
        reply, extra = fds[0], fds[1:]
        os.set_inheritable(reply, False)  # received fds are inheritable: never into a container
        for target, fd in enumerate(extra[:3]):
            os.dup2(fd, target)
        for fd in extra:
            if fd > 2:
                os.close(fd)
        try:
            request = json.loads(message)
            result = {"ok": self._ops[request["op"]](**request["args"])}
        except BaseException as e:  # noqa: BLE001 - every failure goes back as a result
            from node.api.errors import ApiError
            status = e.status if isinstance(e, ApiError) else 500
            result = {"error": getattr(e, "message", None) or str(e) or e.__class__.__name__,
                      "status": status}
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        data = json.dumps(result).encode()
        while data:
            data = data[os.write(reply, data):]
        os._exit(0)

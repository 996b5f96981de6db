"""A small faulty proxy (aiohttp) to put in front of an upstream registry in the tests.

It forwards every request (streaming, headers and status as they are) and counts them by
``(method, path)``. ``mode`` makes it misbehave: "pass" (default), "429", "503", "stall"
(accept the request, answer nothing for ``stall`` seconds), "reset" (drop the connection),
"corrupt" (blob bodies arrive with their last byte changed).
``FaultyProxy.start_in_thread(target_url)`` runs it on its own loop for tests that drive
subprocesses; ``app(target_url)`` gives the aiohttp app for in-process tests.
"""
from __future__ import annotations

import asyncio
import collections
import threading

import aiohttp
from aiohttp import web

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}


class FaultyProxy:
    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.mode = "pass"
        self.stall = 3600.0
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.session: aiohttp.ClientSession | None = None
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    def gets(self, fragment: str) -> int:
        """GETs of paths containing ``fragment`` (e.g. a digest)."""
        return sum(n for (m, p), n in self.counts.items() if m == "GET" and fragment in p)

    def reset_counts(self) -> None:
        self.counts.clear()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.counts[(request.method, request.path)] += 1
        if self.mode == "429":
            return web.json_response({"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]}, status=429,
                                     headers={"Retry-After": "7"})
        if self.mode == "503":
            return web.Response(status=503, text="maintenance")
        if self.mode == "stall":
            await asyncio.sleep(self.stall)
        if self.mode == "reset":
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        if self.session is None:
            self.session = aiohttp.ClientSession(auto_decompress=False)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        body = await request.read()
        async with self.session.request(request.method, self.target + request.path_qs, headers=headers,
                                        data=body or None, allow_redirects=False) as up:
            out = web.StreamResponse(status=up.status, headers={k: v for k, v in up.headers.items()
                                                                if k.lower() not in HOP})
            if up.content_length is not None:
                out.content_length = up.content_length
            await out.prepare(request)
            if request.method != "HEAD":
                corrupt = self.mode == "corrupt" and "/blobs/" in request.path
                pending = b""
                async for chunk in up.content.iter_chunked(64 << 10):
                    if pending:
                        await out.write(pending)
                    pending = chunk
                if corrupt and pending:
                    pending = pending[:-1] + bytes([pending[-1] ^ 0xFF])
                await out.write(pending)
            await out.write_eof()
            return out

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)

        async def close(_app):
            if self.session is not None:
                await self.session.close()

        app.on_cleanup.append(close)
        return app

    # -- in a thread, for tests that drive subprocesses -----------------------------------------
    def start_in_thread(self, port: int) -> "FaultyProxy":
        ready = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            self._runner = web.AppRunner(self.app(), access_log=None)
            loop.run_until_complete(self._runner.setup())
            loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", port).start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name="faulty-proxy")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("faulty proxy did not start")
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

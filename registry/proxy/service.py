"""The running cache: one client per upstream, the router, the shared fetches."""
from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import web

from .blobs import BlobFetch
from .cache import CacheStore
from .routing import Router, Target
from .settings import ProxySettings
from .singleflight import SingleFlight
from .upstream import UpstreamClient

MAX_CHECKED = 100_000


class ProxyService:
    def __init__(self, app: web.Application, settings: ProxySettings) -> None:
        self.settings = settings
        self.clients = {up.name: UpstreamClient(up) for up in settings.upstreams}
        self.router = Router(settings, self.clients)
        self.cache = CacheStore(app)
        self.flights = SingleFlight()
        self.fetches: dict[tuple[str, str], BlobFetch] = {}
        # (repository, tag) -> when this process last confirmed it with the upstream (or read
        # that from the index): a warm pull within tag_ttl costs no lookup of its own.
        self._checked: dict[tuple[str, str], float] = {}
        self._evictor: asyncio.Task | None = None

    async def open(self) -> None:
        for client in self.clients.values():
            await client.open()
        if self.settings.max_size:
            from .eviction import eviction_loop

            self._evictor = asyncio.create_task(eviction_loop(self, self.settings.max_size))

    async def close(self) -> None:
        if self._evictor is not None:
            self._evictor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._evictor
        for fetch in list(self.fetches.values()):
            fetch.task.cancel()
        for client in self.clients.values():
            await client.close()

    def recently_checked(self, local: str, tag: str) -> bool:
        target = self.router.prefixed(local)
        when = self._checked.get((local, tag))
        return target is not None and when is not None and time.time() - when < target.upstream.tag_ttl

    def note_checked(self, local: str, tag: str, when: float | None = None) -> None:
        if len(self._checked) > MAX_CHECKED:
            self._checked.clear()  # a bound, not an LRU: the index still knows every check time
        self._checked[(local, tag)] = time.time() if when is None else when

    def forget_checked(self, local: str, tag: str) -> None:
        self._checked.pop((local, tag), None)

    def forget_repository(self, local: str) -> None:
        for key in [k for k in self._checked if k[0] == local]:
            del self._checked[key]

    async def target(self, name: str, reading: bool) -> Target | None:
        """Where a request for ``name`` goes: a cached repository's target, or None (local)."""
        target = self.router.prefixed(name)
        if target is not None or not reading or not self.settings.mirror:
            return target
        if await self.cache.repository_exists(name):
            return None  # a local repository wins over the mirror
        return self.router.mirrored(name)

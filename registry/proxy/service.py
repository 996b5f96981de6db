"""The running cache: one client per upstream, the router, the shared fetches."""
from __future__ import annotations

from aiohttp import web

from .blobs import BlobFetch
from .cache import CacheStore
from .routing import Router, Target
from .settings import ProxySettings
from .singleflight import SingleFlight
from .upstream import UpstreamClient


class ProxyService:
    def __init__(self, app: web.Application, settings: ProxySettings) -> None:
        self.settings = settings
        self.clients = {up.name: UpstreamClient(up) for up in settings.upstreams}
        self.router = Router(settings, self.clients)
        self.cache = CacheStore(app)
        self.flights = SingleFlight()
        self.fetches: dict[tuple[str, str], BlobFetch] = {}

    async def open(self) -> None:
        for client in self.clients.values():
            await client.open()

    async def close(self) -> None:
        for fetch in list(self.fetches.values()):
            fetch.task.cancel()
        for client in self.clients.values():
            await client.close()

    async def target(self, name: str, reading: bool) -> Target | None:
        """Where a request for ``name`` goes: a cached repository's target, or None (local)."""
        target = self.router.prefixed(name)
        if target is not None or not reading or not self.settings.mirror:
            return target
        if await self.cache.repository_exists(name):
            return None  # a local repository wins over the mirror
        return self.router.mirrored(name)

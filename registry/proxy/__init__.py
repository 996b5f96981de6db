"""The registry as a pull-through cache of other registries (``proxy:`` in the config).

``setup_proxy(app, config)`` (called by registry.app.create_app after auth) does nothing
without upstreams (and imports nothing more: the registry's idle footprint stays small).
Otherwise it opens one HTTP client per upstream in ``cleanup_ctx`` and adds the middleware
(registry/proxy/middleware.py) that diverts requests for cached names.

Modules: settings (the config section), upstream + upstream_auth (the client, its sign-in and
failure policy), routing (which names are cached), manifests and blobs (fetch and store on
demand; the blob tee), tags, cache (the adapter onto the index and storage), errors, service.

For the catalog and others: ``cached_origins(app, names) -> {name: upstream}`` tells which
repositories are cached copies and of which upstream.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, AsyncIterator

from aiohttp import web

from ..config import RegistryConfig
from ..state import INDEX
from .settings import parse_proxy

if TYPE_CHECKING:
    from .service import ProxyService

__all__ = ["PROXY", "cached_origins", "parse_proxy", "setup_proxy"]

PROXY: web.AppKey["ProxyService"] = web.AppKey("proxy")


def setup_proxy(app: web.Application, config: RegistryConfig) -> None:
    settings = parse_proxy(config)
    if not settings.enabled:
        return
    from .middleware import make_middleware
    from .service import ProxyService

    async def resources(app: web.Application) -> AsyncIterator[None]:
        svc = ProxyService(app, settings)
        await svc.open()
        app[PROXY] = svc
        try:
            yield
        finally:
            await svc.close()

    app.cleanup_ctx.append(resources)  # after registry.app's resources: the index is open
    app.middlewares.append(make_middleware(lambda: app[PROXY]))  # after auth's: its rules apply first


async def cached_origins(app: web.Application, names: list[str]) -> dict[str, str]:
    """Which of ``names`` are cached copies, and of which upstream."""
    from ..index.proxy_queries import ProxyQueries

    return await ProxyQueries(app[INDEX].db).origins(names)

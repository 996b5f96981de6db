"""The HTML catalog browser, its JSON API and Docker's v1 search, served by the registry.

``setup_catalog(app, config)`` is called by registry.app.create_app after the API routes exist.
It adds the routes (registry/web/views.py, registry/web/api.py), the static files, a response
hook that sets security headers (CSP: nothing but this origin; no inline script or style) on
every catalog response, a hook that notices writes under /v2/ (they make the ranking snapshot
stale), and the catalog's own resources in ``cleanup_ctx`` (after the index and storage exist).

Settings (the ``catalog`` section of the config): ``enabled`` (default true), ``ranking_max_age``
(seconds a ranking snapshot may serve other processes' writes, default 30).
"""
from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

from aiohttp import web

from .. import state
from ..config import ConfigError, RegistryConfig, parse_bool
from ..index.catalog import CatalogQueries
from .access import may_pull_filter
from .images import ImageReader
from .ranking import Ranking
from .service import CatalogService

STATIC_DIR = Path(__file__).parent / "static"
SERVICE: web.AppKey[CatalogService] = web.AppKey("catalog_service", CatalogService)
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
WRITE_METHODS = frozenset({"PUT", "POST", "DELETE"})


def _max_age(config: RegistryConfig) -> float:
    value = config.catalog.get("ranking_max_age", 30)
    try:
        age = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"catalog.ranking_max_age: expected seconds, got {value!r}") from None
    if age < 0:
        raise ConfigError("catalog.ranking_max_age: must not be negative")
    return age


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    path = request.path
    if path.startswith(("/ui", "/api/", "/v1/")) or path == "/":
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
    elif request.method in WRITE_METHODS and path.startswith("/v2/") and response.status < 400:
        service = request.app.get(SERVICE)
        if service is not None:
            service.ranking.mark_dirty()


def setup_catalog(app: web.Application, config: RegistryConfig) -> None:
    if not parse_bool(config.catalog.get("enabled", True), "catalog.enabled"):
        return
    max_age = _max_age(config)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        index = app[state.INDEX]
        ranking = Ranking(CatalogQueries(index.db), max_age=max_age)

        async def linked(repository: str, digest: str) -> bool:
            return await index.blob_size(repository, digest) is not None

        app[SERVICE] = CatalogService(ranking.queries, ranking, ImageReader(app[state.STORAGE], linked))
        ranking.start()  # build the first snapshot in the background, before anyone asks
        try:
            yield
        finally:
            await ranking.close()

    # After registry.app's own resources: the index and storage are open when this runs.
    app.cleanup_ctx.append(resources)
    app.on_response_prepare.append(_security_headers)
    from . import api, views

    views.add_routes(app)
    api.add_routes(app)
    app.router.add_static("/ui/static/", STATIC_DIR, name="ui.static", append_version=True)
    app.middlewares.append(views.html_errors)


__all__ = ["SERVICE", "setup_catalog", "may_pull_filter"]

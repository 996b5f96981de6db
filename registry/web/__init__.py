"""The HTML catalog browser, its JSON API and Docker's v1 search, served by the registry.

``setup_catalog(app, config)`` is called by registry.app.create_app after the API routes exist.
It adds the routes (registry/web/views.py, registry/web/api.py), the static files, a response
hook that sets security headers (CSP: nothing but this origin; no inline script or style) on
every catalog response, a hook that notices writes under /v2/ (they make the ranking snapshot
stale), and the catalog's own resources in ``cleanup_ctx`` (after the index and storage exist).

It also adds the CSRF guard for every form (registry/web/csrf.py), renders the sign-in page
of registry.auth with the site's header, and records the last pull of each tag
(registry/web/pulls.py, from a hook on successful manifest GETs).

Settings: the ``catalog`` section, parsed in registry/web/settings.py.
"""
from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

from aiohttp import web

from .. import state
from ..config import RegistryConfig
from ..index.catalog import CatalogQueries
from ..index.catalog_details import CatalogDetails
from . import csrf
from .access import may_pull_filter
from .images import ImageReader
from .pulls import PullRecorder
from .ranking import Ranking
from .service import CatalogService
from .settings import parse_catalog

STATIC_DIR = Path(__file__).parent / "static"
SERVICE: web.AppKey[CatalogService] = web.AppKey("catalog_service", CatalogService)
PULLS: web.AppKey[PullRecorder] = web.AppKey("catalog_pulls", PullRecorder)
ACTIONS_ENABLED: web.AppKey[bool] = web.AppKey("catalog_actions", bool)
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
WRITE_METHODS = frozenset({"PUT", "POST", "DELETE"})


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    path = request.path
    if path.startswith(("/ui", "/api/", "/v1/", "/auth/")) or path == "/":
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        await csrf.set_cookie(request, response)
    elif request.method in WRITE_METHODS and path.startswith("/v2/") and response.status < 400:
        service = request.app.get(SERVICE)
        if service is not None:
            service.ranking.mark_dirty()
    elif request.method == "GET" and response.status == 200 and path.startswith("/v2/"):
        match = request.match_info
        if match.route.name == "v2.manifest.get":
            pulls = request.app.get(PULLS)
            if pulls is not None:
                pulls.note(match["name"], match["reference"])


def setup_catalog(app: web.Application, config: RegistryConfig) -> None:
    settings = parse_catalog(config)
    if not settings.enabled:
        return
    app[ACTIONS_ENABLED] = settings.actions

    async def resources(app: web.Application) -> AsyncIterator[None]:
        index = app[state.INDEX]
        ranking = Ranking(CatalogQueries(index.db), max_age=settings.ranking_max_age)
        details = CatalogDetails(index.db)

        async def linked(repository: str, digest: str) -> bool:
            return await index.blob_size(repository, digest) is not None

        service = app[SERVICE] = CatalogService(ranking.queries, ranking, ImageReader(app[state.STORAGE], linked),
                                                details)
        pulls = app[PULLS] = PullRecorder(details, settings.pull_flush_interval)
        ranking.start()  # build the first snapshot in the background, before anyone asks
        if settings.record_pulls:
            pulls.start()
        try:
            yield
        finally:
            await ranking.close()
            await service.close()
            await pulls.close()

    # After registry.app's own resources: the index and storage are open when this runs.
    app.cleanup_ctx.append(resources)
    app.on_response_prepare.append(_security_headers)
    from . import actions, api, files_views, views
    from .middleware import catalog_middleware
    from ..auth.login import PAGE_RENDERER

    app[PAGE_RENDERER] = views.login_page
    # The pages under /ui/r/{name}/-/... first: the repository page's {name} would match them all.
    actions.add_routes(app)
    files_views.add_routes(app)
    views.add_routes(app)
    api.add_routes(app)
    app.router.add_static("/ui/static/", STATIC_DIR, name="ui.static", append_version=True)
    app.middlewares.append(catalog_middleware)  # the HTML 404 and the CSRF guard, one layer


__all__ = ["SERVICE", "setup_catalog", "may_pull_filter"]

"""The JSON API behind the catalog pages, and Docker's v1 search.

Every answer is the same data the matching page renders (registry/web/service.py builds both).
The routes are described, with their parameters and answers, by the OpenAPI document in
registry/web/openapi.py (served at /api/v1/openapi.json, shown as the /ui/api page). Errors:
``{"error": "..."}`` with 404 (unknown or hidden repository, unknown tag or digest).
"""
from __future__ import annotations

from aiohttp import web


from . import openapi
from .access import catalog_service, may_pull_filter, sorting, visible_name
from .service import REPO_SORTS, TAG_SORTS, NotFound, Paging

NAME = "{name:[^-][^?#]*?}"


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def index(request: web.Request) -> web.Response:
    return web.json_response({"endpoints": openapi.endpoint_lines(), "openapi": "/api/v1/openapi.json"})


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(openapi.document(f"{request.scheme}://{request.host}"))


async def storage(request: web.Request) -> web.Response:
    return web.json_response(await catalog_service(request).namespace_storage(may_pull_filter(request)))


async def repository_storage(request: web.Request) -> web.Response:
    try:
        return web.json_response(await catalog_service(request).repository_storage(visible_name(request)))
    except NotFound:
        return _error(404, "repository not found")


async def stats(request: web.Request) -> web.Response:
    return web.json_response(await catalog_service(request).stats(may_pull_filter(request)))


async def repositories(request: web.Request) -> web.Response:
    sort, desc = sorting(request, REPO_SORTS)
    paging = Paging.parse(request.query.get("page"), request.query.get("per_page"))
    listing = await catalog_service(request).repositories(request.query.get("q", ""), sort, desc, paging,
                                                    may_pull_filter(request))
    return web.json_response(listing)


async def repository(request: web.Request) -> web.Response:
    try:
        data = await catalog_service(request).repository(visible_name(request), "", "name", False, Paging(1, 1))
    except NotFound:
        return _error(404, "repository not found")
    return web.json_response(data["repository"])


async def tags(request: web.Request) -> web.Response:
    try:
        sort, desc = sorting(request, TAG_SORTS)
        paging = Paging.parse(request.query.get("page"), request.query.get("per_page"))
        data = await catalog_service(request).repository(visible_name(request), request.query.get("q", ""), sort, desc, paging)
    except NotFound:
        return _error(404, "repository not found")
    return web.json_response(data)


async def manifest(request: web.Request) -> web.Response:
    try:
        data = await catalog_service(request).image(visible_name(request), request.match_info["reference"])
    except NotFound:
        return _error(404, "manifest not found")
    return web.json_response(data)


async def v1_search(request: web.Request) -> web.Response:
    """``docker search HOST/TERM`` asks ``GET /v1/search?q=TERM&n=25``."""
    paging = Paging.parse(request.query.get("page"), request.query.get("n"), default=25)
    return web.json_response(await catalog_service(request).search(request.query.get("q", ""), paging,
                                                            may_pull_filter(request)))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/", index, name="api.index")
    r.add_get("/api/v1/openapi.json", openapi_document, name="api.openapi")
    r.add_get("/api/v1/stats", stats, name="api.stats")
    r.add_get("/api/v1/storage", storage, name="api.storage")
    r.add_get(f"/api/v1/storage/{NAME}", repository_storage, name="api.repository_storage")
    r.add_get("/api/v1/repositories", repositories, name="api.repositories")
    r.add_get(f"/api/v1/repositories/{NAME}/tags", tags, name="api.tags")
    r.add_get(f"/api/v1/repositories/{NAME}/manifests/{{reference}}", manifest, name="api.manifest")
    r.add_get(f"/api/v1/repositories/{NAME}", repository, name="api.repository")
    r.add_get("/v1/search", v1_search, name="v1.search")

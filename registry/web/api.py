"""The JSON API behind the catalog pages, and Docker's v1 search.

Every answer is the same data the matching page renders (registry/web/service.py builds both).
Times are seconds since the epoch (float); sizes are bytes; ``created`` is the image config's
own RFC 3339 string. Errors: ``{"error": "..."}`` with 404 (unknown or hidden repository,
unknown tag or digest).

    GET /api/v1/                                    this list of endpoints
    GET /api/v1/stats                               {repositories, tags, blobs, stored_bytes, saved_bytes}
    GET /api/v1/repositories?q=&sort=&order=&page=&per_page=
        sort: name (default, ascending) | tags | size | pushed (descending by default);
        order: asc | desc; per_page <= 100. -> {query, sort, order, page, per_page, total, pages,
        repositories: [{name, tag_count, size, last_push}]}
    GET /api/v1/repositories/{name}                 {name, tag_count, size, last_push}
    GET /api/v1/repositories/{name}/tags?q=&sort=&order=&page=&per_page=
        sort: name | pushed | size. -> {repository, ..., tags: [{name, digest, media_type, kind,
        artifact_type, platforms, compressed_size, manifest_size, created, pushed_at}]}
    GET /api/v1/repositories/{name}/manifests/{tag or digest}
        -> {digest, media_type, kind (image|index|artifact), tags, config {entrypoint, cmd, env,
        working_dir, user, exposed_ports, volumes, labels}, layers [{digest, size, created_by}],
        history, manifests (index entries with platform), annotations, subject, referrers}
    GET /v1/search?q=&n=&page=                      Docker's search format (`docker search`):
        {num_results, num_pages, page, page_size, query, results: [{name, description,
        star_count, is_official, is_automated}]}
"""
from __future__ import annotations

from aiohttp import web


from .access import catalog_service, may_pull_filter, sorting, visible_name
from .service import REPO_SORTS, TAG_SORTS, NotFound, Paging

NAME = "{name:[^-][^?#]*?}"
ENDPOINTS = [line.strip() for line in (__doc__ or "").split("\n") if line.strip().startswith("GET ")]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def index(request: web.Request) -> web.Response:
    return web.json_response({"endpoints": ENDPOINTS})


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
    r.add_get("/api/v1/stats", stats, name="api.stats")
    r.add_get("/api/v1/repositories", repositories, name="api.repositories")
    r.add_get(f"/api/v1/repositories/{NAME}/tags", tags, name="api.tags")
    r.add_get(f"/api/v1/repositories/{NAME}/manifests/{{reference}}", manifest, name="api.manifest")
    r.add_get(f"/api/v1/repositories/{NAME}", repository, name="api.repository")
    r.add_get("/v1/search", v1_search, name="v1.search")

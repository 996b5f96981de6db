"""The whole /v2 API in one table.

Repository names may have several segments (``a/b/c``), so ``{name}`` matches lazily up to the
fixed part that follows (``/blobs/``, ``/manifests/``, ``/tags/list``, ``/referrers/``); the
handler then validates it (NAME_INVALID) before anything is read or stored. Every route has a
name, so middlewares (auth) can tell what a request is for from
``request.match_info.route.name`` and ``request.match_info.get("name")``.
"""
from __future__ import annotations

from aiohttp import web

from . import blobs, catalog, manifests, referrers, tags, uploads

NAME = "{name:.+?}"
GET, HEAD, PUT, POST, PATCH, DELETE = "GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"


async def api_base(request: web.Request) -> web.Response:
    return web.json_response({})


# (method, path, handler, route name). Route names group by resource and action for auth:
#   "v2.base", "v2.catalog", "v2.<resource>.<pull|push|delete>".
ROUTES: list[tuple[str, str, object, str]] = [
    (GET, "/v2/", api_base, "v2.base"),
    (GET, "/v2/_catalog", catalog.list_repositories, "v2.catalog"),
    (POST, f"/v2/{NAME}/blobs/uploads/", uploads.start_upload, "v2.upload.start"),
    (POST, f"/v2/{NAME}/blobs/uploads", uploads.start_upload, "v2.upload.start_noslash"),
    (PATCH, f"/v2/{NAME}/blobs/uploads/{{uuid}}", uploads.patch_upload, "v2.upload.patch"),
    (PUT, f"/v2/{NAME}/blobs/uploads/{{uuid}}", uploads.put_upload, "v2.upload.put"),
    (GET, f"/v2/{NAME}/blobs/uploads/{{uuid}}", uploads.get_upload, "v2.upload.status"),
    (DELETE, f"/v2/{NAME}/blobs/uploads/{{uuid}}", uploads.delete_upload, "v2.upload.cancel"),
    (GET, f"/v2/{NAME}/blobs/{{digest}}", blobs.get_blob, "v2.blob.get"),
    (DELETE, f"/v2/{NAME}/blobs/{{digest}}", blobs.delete_blob, "v2.blob.delete"),
    (GET, f"/v2/{NAME}/manifests/{{reference}}", manifests.get_manifest, "v2.manifest.get"),
    (PUT, f"/v2/{NAME}/manifests/{{reference}}", manifests.put_manifest, "v2.manifest.put"),
    (DELETE, f"/v2/{NAME}/manifests/{{reference}}", manifests.delete_manifest, "v2.manifest.delete"),
    (GET, f"/v2/{NAME}/tags/list", tags.list_tags, "v2.tags.list"),
    (GET, f"/v2/{NAME}/referrers/{{digest}}", referrers.list_referrers, "v2.referrers.list"),
]

# What each route does to the repository in its URL, for authorization.
ACTIONS: dict[str, str] = {
    "v2.base": "",
    "v2.catalog": "catalog",
    "v2.upload.start": "push",
    "v2.upload.start_noslash": "push",
    "v2.upload.patch": "push",
    "v2.upload.put": "push",
    "v2.upload.status": "push",
    "v2.upload.cancel": "push",
    "v2.blob.get": "pull",
    "v2.blob.delete": "delete",
    "v2.manifest.get": "pull",
    "v2.manifest.put": "push",
    "v2.manifest.delete": "delete",
    "v2.tags.list": "pull",
    "v2.referrers.list": "pull",
}


def add_routes(app: web.Application) -> None:
    for method, path, handler, name in ROUTES:
        if method == GET:  # GET routes answer HEAD too
            app.router.add_get(path, handler, name=name)  # type: ignore[arg-type]
        else:
            app.router.add_route(method, path, handler, name=name)  # type: ignore[arg-type]

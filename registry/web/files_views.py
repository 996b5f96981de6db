"""What is inside an image: one layer's file list, and the merged tree, as pages and JSON.

    GET /ui/r/{name}/-/manifest/{ref}/layers/{digest}/files?offset=&limit=    (ui.layer_files)
    GET /ui/r/{name}/-/manifest/{ref}/tree?path=&offset=&limit=               (ui.tree)
    GET /api/v1/repositories/{name}/manifests/{ref}/layers/{digest}/files      the same, as JSON
    GET /api/v1/repositories/{name}/manifests/{ref}/tree

The layer must be one of the manifest's layers and linked in the repository (so a caller who may
pull one repository cannot list another's blob by digest); the tree reads only linked layers; the reading is registry/web/layer_files.py and file_tree.py.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from ..storage.driver import StorageError
from .access import catalog_service, visible_name
from .file_tree import page
from .layer_files import DEFAULT_LIMIT, MAX_LIMIT, FileList, list_layer
from .service import NotFound
from .views import NAME, not_found, render

API = "/api/v1/repositories"


def _int(text: str | None, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(int(text), high)) if text else default
    except ValueError:
        return default


async def _image(request: web.Request) -> dict[str, Any]:
    name = visible_name(request)
    image = await catalog_service(request).image(name, request.match_info["reference"])
    if image["kind"] != "image":
        raise NotFound(name)
    return image


async def _layer(request: web.Request) -> tuple[dict[str, Any], dict[str, Any], FileList]:
    image = await _image(request)
    digest = request.match_info["digest"]
    layer = next((l for l in image["layers"] if l["digest"] == digest), None)
    if layer is None or not await catalog_service(request).images.linked(image["repository"], digest):
        raise NotFound(digest)
    offset = _int(request.query.get("offset"), 0, 0, 10**9)
    limit = _int(request.query.get("limit"), DEFAULT_LIMIT, 1, MAX_LIMIT)
    try:
        listing = await list_layer(catalog_service(request).images.storage, digest, offset, limit)
    except (StorageError, OSError) as e:
        listing = FileList(offset=offset, complete="yes", problem=f"layer bytes unavailable: {e}")
    return image, layer, listing


async def _tree(request: web.Request) -> tuple[dict[str, Any], FileList, str]:
    image = await _image(request)
    text = request.query.get("path", "")[:500]
    offset = _int(request.query.get("offset"), 0, 0, 10**9)
    limit = _int(request.query.get("limit"), DEFAULT_LIMIT, 1, MAX_LIMIT)
    svc = catalog_service(request)
    layers = [l["digest"] for l in image["layers"]]
    linked = [d for d in layers if await svc.images.linked(image["repository"], d)]
    if linked != layers:  # a layer not linked here (#13.2): show nothing rather than a wrong tree
        return image, FileList(problem="some layers are not linked in this repository"), ""
    tree = await svc.trees.tree(image["digest"], layers)
    return image, page(tree, text, offset, limit), text


async def layer_files_page(request: web.Request) -> web.Response:
    try:
        image, layer, listing = await _layer(request)
    except NotFound:
        return not_found(request, f"layer {request.match_info['digest']}")
    return render(request, "files.html", image=image, layer=layer, listing=listing, query="", mode="layer",
                  number=image["layers"].index(layer) + 1)


async def tree_page(request: web.Request) -> web.Response:
    try:
        image, listing, text = await _tree(request)
    except NotFound:
        return not_found(request, f"image {request.match_info['reference']}")
    return render(request, "files.html", image=image, layer=None, listing=listing, query=text, mode="tree", number=0)


async def layer_files_api(request: web.Request) -> web.Response:
    try:
        _, _, listing = await _layer(request)
    except NotFound:
        return web.json_response({"error": "layer not found"}, status=404)
    return web.json_response(listing.as_dict())


async def tree_api(request: web.Request) -> web.Response:
    try:
        _, listing, _ = await _tree(request)
    except NotFound:
        return web.json_response({"error": "image not found"}, status=404)
    return web.json_response(listing.as_dict())


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(f"/ui/r/{NAME}/-/manifest/{{reference}}/layers/{{digest}}/files", layer_files_page, name="ui.layer_files")
    r.add_get(f"/ui/r/{NAME}/-/manifest/{{reference}}/tree", tree_page, name="ui.tree")
    r.add_get(f"{API}/{NAME}/manifests/{{reference}}/layers/{{digest}}/files", layer_files_api, name="api.layer_files")
    r.add_get(f"{API}/{NAME}/manifests/{{reference}}/tree", tree_api, name="api.tree")

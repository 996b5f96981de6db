"""``/containers/{id}/archive`` (what `docker cp` uses), ``/export`` and ``/changes`` (diff): HEAD stats a path, GET returns it as a
tar, PUT extracts a tar into a directory of the container — running or stopped — through
node.engine.copy, the same code as `dockyard cp`: paths are resolved inside the container's
root with openat2 (its symlinks never reach the host) and extraction refuses absolute names,
``..`` and writing through links.

The tar is spooled through a temporary file (the engine's copy is synchronous; the event loop
must not wait on it), in a thread.
"""
from __future__ import annotations

import asyncio
import base64
import json
import tempfile

from aiohttp import web

from node.api import backend
from node.api.containers import _container
from node.api.errors import ApiError, bad_request, json_response, not_found
from node.api.versions import add_route


def _path(request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise bad_request("path is required")
    return path


def _stat_header(info: dict) -> str:
    doc = {k: info[k] for k in ("name", "size", "mode", "mtime", "linkTarget")}
    return base64.b64encode(json.dumps(doc).encode()).decode()


def _missing_or(e: ApiError, request, path: str) -> ApiError:
    if "could not find" in e.message.lower() or e.status == 404:
        return not_found(f"Could not find the file {path} in container {request.match_info['id']}")
    return e


async def head(request: web.Request) -> web.Response:
    container, path = _container(request), _path(request)
    try:
        info = await asyncio.to_thread(backend.archive_stat, container, path)
    except ApiError as e:
        raise _missing_or(e, request, path) from None
    return web.Response(status=200, headers={"X-Docker-Container-Path-Stat": _stat_header(info)})


async def get(request: web.Request) -> web.StreamResponse:
    container, path = _container(request), _path(request)
    with tempfile.TemporaryFile() as spool:
        try:
            info = await asyncio.to_thread(backend.archive_from, container, path, spool)
        except ApiError as e:
            raise _missing_or(e, request, path) from None
        spool.seek(0)
        response = web.StreamResponse(headers={"Content-Type": "application/x-tar",
                                               "X-Docker-Container-Path-Stat": _stat_header(info)})
        await response.prepare(request)
        while chunk := await asyncio.to_thread(spool.read, 1 << 20):
            await response.write(chunk)
        await response.write_eof()
        return response


async def put(request: web.Request) -> web.Response:
    container, path = _container(request), _path(request)
    with tempfile.TemporaryFile() as spool:
        async for chunk in request.content.iter_chunked(1 << 20):
            await asyncio.to_thread(spool.write, chunk)
        spool.seek(0)
        try:
            await asyncio.to_thread(backend.archive_into, container, path, spool)
        except ApiError as e:
            raise _missing_or(e, request, path) from None
    return web.Response(status=200)


async def export(request: web.Request) -> web.StreamResponse:
    """``docker export``: the container's whole filesystem as a tar."""
    container = _container(request)
    with tempfile.TemporaryFile() as spool:
        await asyncio.to_thread(backend.archive_from, container, "/", spool, ".")
        spool.seek(0)
        response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
        await response.prepare(request)
        while chunk := await asyncio.to_thread(spool.read, 1 << 20):
            await response.write(chunk)
        await response.write_eof()
        return response


async def changes(request: web.Request) -> web.Response:
    """``docker diff``: Kind 0 modified, 1 added, 2 deleted."""
    container = _container(request)
    kinds = {"C": 0, "A": 1, "D": 2}
    found = await asyncio.to_thread(backend.changes, container)
    return json_response([{"Path": path, "Kind": kinds[kind]} for kind, path in found] or None)


def register(router) -> None:
    add_route(router, "HEAD", "/containers/{id}/archive", head)
    add_route(router, "GET", "/containers/{id}/archive", get)
    add_route(router, "PUT", "/containers/{id}/archive", put)
    add_route(router, "GET", "/containers/{id}/export", export)
    add_route(router, "GET", "/containers/{id}/changes", changes)

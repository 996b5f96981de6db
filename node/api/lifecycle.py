"""Container rename, commit, update and rootfs import (``/images/create?fromSrc=-``), as the
daemon answers them: the engine does the work (node/engine/rename.py, commit.py, update.py,
node/images/rootfs_import.py) and writes the events."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile

from aiohttp import web

from node.api import backend
from node.api.errors import bad_request, json_response, not_found, read_json
from node.api.streams import stream_response
from node.api.versions import add_route


def _find(request, ref: str):
    try:
        return backend.find(request.app["root"], ref)
    except Exception as e:  # noqa: BLE001 - docker's 404 words
        if getattr(e, "status", 404) == 404:
            raise not_found(f"No such container: {ref}") from None
        raise


def _repo_tag(request) -> str | None:
    repo, tag = request.query.get("repo") or "", request.query.get("tag") or ""
    if not repo:
        if tag:
            raise bad_request("tag given without a repository")
        return None
    return f"{repo}:{tag}" if tag else repo


def _changes(request) -> list[str]:
    """``changes`` as the docker CLI sends it (one value per -c) or docker-py (one, newline-split)."""
    out = []
    for value in request.query.getall("changes", []):
        out += [line for line in value.split("\n") if line.strip()]
    return out


async def rename(request: web.Request) -> web.Response:
    container = _find(request, request.match_info["id"])
    name = request.query.get("name") or ""
    await backend.rename(request.app["root"], container, name)
    return web.Response(status=204)


async def commit(request: web.Request) -> web.Response:
    ref = request.query.get("container")
    if not ref:
        raise bad_request("container is required")
    container = _find(request, ref)
    body = await read_json(request)
    pause = (request.query.get("pause") or "1").lower() not in ("0", "false")
    image = await backend.commit(request.app["root"], container, _repo_tag(request), _changes(request),
                                 request.query.get("comment") or "", request.query.get("author") or "",
                                 pause, {k: v for k, v in body.items() if v not in (None, "", [], {})})
    return json_response({"Id": image.id}, status=201)


def _positive(body: dict, key: str):
    value = body.get(key)
    if value in (None, 0):
        return None  # docker's clients send every field; zero means "leave it"
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_request(f"invalid {key}: {value!r}")
    return value


async def update(request: web.Request) -> web.Response:
    container = _find(request, request.match_info["id"])
    body = await read_json(request)
    nano = _positive(body, "NanoCpus")
    restart = body.get("RestartPolicy") or {}
    policy = None
    if restart.get("Name"):
        count = restart.get("MaximumRetryCount") or 0
        policy = f"{restart['Name']}:{count}" if count else restart["Name"]
    pids = body.get("PidsLimit")
    limits = {"memory": _positive(body, "Memory"), "memory_swap": _positive(body, "MemorySwap"),
              "cpus": None if nano is None else str(nano / 1e9), "cpu_shares": _positive(body, "CpuShares"),
              "cpu_quota": _positive(body, "CpuQuota"), "cpu_period": _positive(body, "CpuPeriod"),
              "pids_limit": None if pids in (None, 0) else int(pids), "restart": policy}
    if all(v is None for v in limits.values()):
        return json_response({"Warnings": []})
    await backend.update(container, limits)
    return json_response({"Warnings": []})


async def import_image(request: web.Request) -> web.StreamResponse:
    """``fromSrc=-``: the body is the tarball. Answers docker's progress stream, whose last
    status is the new image's ID (what `docker import` prints)."""
    if request.query.get("fromSrc") != "-":
        raise bad_request("importing from a URL is not supported: send the tarball as the body (fromSrc=-)")
    fd, path = tempfile.mkstemp(dir=backend.scratch_dir(request.app["root"]), prefix="api-import-")
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.content.iter_chunked(1 << 20):
                await asyncio.to_thread(f.write, chunk)
        image = await backend.import_rootfs(request.app["root"], path, _repo_tag(request), _changes(request),
                                            request.query.get("message") or "",
                                            request.query.get("platform") or None)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    response = await stream_response(request, "application/json")
    await response.write(json.dumps({"status": image.id}).encode() + b"\r\n")
    await response.write_eof()
    return response


def register(router) -> None:
    add_route(router, "POST", "/containers/{id}/rename", rename)
    add_route(router, "POST", "/containers/{id}/update", update)
    add_route(router, "POST", "/commit", commit)

"""``POST /build``: the classic build API (what ``DOCKER_BUILDKIT=0`` clients use): a tar of the
context in the body, options in the query, docker's JSON progress stream back.

The context is untrusted: node.tarstream extracts it (no ``..``, no absolute names, no writing
through links) into a scratch dir under ROOT/engine-api/, then node.build runs in a launcher worker (RUN steps fork
containers, which the threaded server must not do) with its plain progress on a pipe; each
line becomes ``{"stream": ...}``, the result docker's ``aux`` ID and "Successfully built/tagged"
lines, a failure one ``errorDetail`` message (HTTP 200, as the daemon streams it).
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from pathlib import Path

from aiohttp import web

from node.api import backend, events
from node.api.errors import ApiError, bad_request, flag, json_response
from node.api.streams import stream_response
from node.api.versions import add_route


def _json_query(request, name: str) -> dict:
    raw = request.query.get(name)
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise bad_request(f"invalid {name}: {e}") from None
    if not isinstance(doc, dict):
        raise bad_request(f"invalid {name}: an object was expected")
    return {str(k): str(v) for k, v in doc.items() if v is not None}


async def _receive_context(request, into: Path) -> None:
    spool = into.with_suffix(".tar")
    with open(spool, "wb") as f:
        async for chunk in request.content.iter_chunked(1 << 20):
            await asyncio.to_thread(f.write, chunk)

    def unpack():
        with open(spool, "rb") as raw:  # plain or compressed: the extractor tells
            backend.extract_tar(raw, into)
    into.mkdir(parents=True)
    try:
        await asyncio.to_thread(unpack)
    finally:
        spool.unlink(missing_ok=True)


async def build(request: web.Request) -> web.StreamResponse:
    if not backend.build_available():
        raise ApiError(501, "the classic builder (/build) is not available: node.build is not installed")
    if request.query.get("remote"):
        raise bad_request("a remote build context is not supported by Dockyard: send the context as a tar")
    tags = request.query.getall("t", [])
    dockerfile = request.query.get("dockerfile") or "Dockerfile"
    if dockerfile.startswith("/") or ".." in Path(dockerfile).parts:
        raise bad_request(f"the Dockerfile ({dockerfile}) must be within the build context")
    network = request.query.get("networkmode") or "bridge"
    args = {"root": str(request.app["root"]), "dockerfile": dockerfile, "tags": tags,
            "build_args": _json_query(request, "buildargs"), "target": request.query.get("target") or None,
            "no_cache": flag(request, "nocache"), "pull": flag(request, "pull"),
            "network": "bridge" if network == "default" else network,
            "labels": _json_query(request, "labels"), "quiet": flag(request, "q")}
    scratch = Path(request.app["root"]) / "engine-api"
    scratch.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="build-", dir=scratch))
    try:
        context = workdir / "context"
        await _receive_context(request, context)
        args["context"] = str(context)
        response = await stream_response(request, "application/json")
        out_r, out_w = os.pipe()
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            reply = request.app["launcher"].send("build", args, (devnull, out_w, out_w))
        finally:
            os.close(out_w)
            os.close(devnull)

        async def say(data: bytes) -> bool:
            text = data.decode(errors="replace")
            await response.write(json.dumps({"stream": text}).encode() + b"\r\n")
            return True
        from node.api.streams import pump_fd_to
        await pump_fd_to(out_r, say, None)
        result = await request.app["launcher"].result(reply)
        if "error" in result:
            text = result["error"]
            await response.write(json.dumps({"errorDetail": {"message": text}, "error": text}).encode() + b"\r\n")
        else:
            image_id = result["ok"]["id"]
            await response.write(json.dumps({"aux": {"ID": image_id}}).encode() + b"\r\n")
            lines = [f"Successfully built {image_id.split(':', 1)[-1][:12]}\n"]
            lines += [f"Successfully tagged {t if ':' in t.rsplit('/', 1)[-1] else t + ':latest'}\n" for t in tags]
            for line in lines:
                await response.write(json.dumps({"stream": line}).encode() + b"\r\n")
            events.emit(request.app, "image", "build", image_id, {"name": ",".join(tags)})
        await response.write_eof()
        return response
    finally:
        await asyncio.to_thread(shutil.rmtree, workdir, True)


async def prune(request: web.Request) -> web.Response:
    return json_response({"CachesDeleted": None, "SpaceReclaimed": 0})


def register(router) -> None:
    add_route(router, "POST", "/build", build)
    add_route(router, "POST", "/build/prune", prune)

"""/images: list, create (pull, with docker's JSON progress stream), inspect, tag, remove, push,
history, save (get) and load.

node.images prints docker-like text lines while it pulls or pushes ("<id>: Downloading",
"Digest: ...", "Status: ..."); ``_ProgressLines`` turns each into docker's JSON message. An
error before the first layer line is answered as an HTTP error (what `docker run` expects for
an image that does not exist); later ones go in the stream as ``errorDetail``, as dockerd does.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import tempfile

from aiohttp import web

from node.api import backend, container_spec, events
from node.api.errors import ApiError, bad_request, filters, flag, json_response, label_matches, not_found
from node.api.streams import stream_response
from node.api.versions import add_route

_LINE = re.compile(r"^(\S+): (.+)$")
NAME = "{name:.+}"


class _ProgressLines:
    """A text stream (for node.images' progress) that hands each line to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
        self._loop, self._queue, self._buf = loop, queue, ""

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        self._buf += text
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            if line.strip():
                self._loop.call_soon_threadsafe(self._queue.put_nowait, line.strip())
        return len(text)

    def flush(self) -> None:
        pass


def message(line: str) -> dict | None:
    m = _LINE.match(line)
    if not m:
        return None  # the reference echoed at the end: the client prints its own
    key, status = m.groups()
    if key in ("Digest", "Status"):
        return {"status": line}
    return {"status": status, "id": key, "progressDetail": {}}


async def _progress(request, work, queue: asyncio.Queue, intro_lines: int = 1) -> web.StreamResponse:
    """Run ``work`` (a task writing lines to ``queue``) and answer with its JSON stream."""
    held: list[str] = []
    response = None
    while True:
        getter = asyncio.ensure_future(queue.get())
        done, _ = await asyncio.wait({getter, work}, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            held.append(getter.result())
        else:
            getter.cancel()
        if work.done():
            while not queue.empty():
                held.append(queue.get_nowait())
        if response is None and (len(held) > intro_lines or (work.done() and work.exception() is None)):
            response = await stream_response(request, "application/json")
        if response is not None:
            for line in held:
                doc = message(line)
                if doc:
                    await response.write(json.dumps(doc).encode() + b"\r\n")
            held = []
        if work.done():
            break
    error = work.exception()
    if error is not None and response is None:
        raise error
    if error is not None:
        text = getattr(error, "message", None) or str(error)
        await response.write(json.dumps({"errorDetail": {"message": text}, "error": text}).encode() + b"\r\n")
    await response.write_eof()
    return response


def _reference(name: str, tag: str | None) -> str:
    if tag:
        return f"{name}@{tag}" if tag.startswith("sha256:") else f"{name}:{tag}"
    last = name.rsplit("/", 1)[-1]
    return name if (":" in last or "@" in name) else f"{name}:latest"


async def create(request: web.Request) -> web.StreamResponse:
    if request.query.get("fromSrc"):
        from node.api.lifecycle import import_image
        return await import_image(request)
    name = request.query.get("fromImage")
    if not name:
        raise bad_request("fromImage is required")
    ref = _reference(name, request.query.get("tag"))
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    work = asyncio.ensure_future(backend.pull(request.app["root"], ref, request.query.get("platform") or None,
                                              _ProgressLines(loop, queue)))
    response = await _progress(request, work, queue)
    if work.exception() is None:
        events.emit(request.app, "image", "pull", ref, {"name": ref})
    return response


def summary(image) -> dict:
    config = backend.image_config(image)
    return {"Id": image.id, "ParentId": "", "RepoTags": list(image.repo_tags),
            "RepoDigests": list(image.repo_digests), "Created": container_spec.epoch(image.created),
            "Size": image.size, "VirtualSize": image.size, "SharedSize": -1,
            "Labels": config.get("Labels") or {}, "Containers": -1}


async def list_images(request: web.Request) -> web.Response:
    wanted = filters(request)
    out = []
    for image in await asyncio.to_thread(backend.images, request.app["root"]):
        doc = summary(image)
        if "dangling" in wanted and (not doc["RepoTags"]) != (wanted["dangling"][0].lower() in ("1", "true")):
            continue
        if "label" in wanted and not label_matches(doc["Labels"], wanted["label"]):
            continue
        if "reference" in wanted and not any(_ref_match(t, r) for t in doc["RepoTags"] for r in wanted["reference"]):
            continue
        out.append(doc)
    return json_response(out)


def _ref_match(tag: str, pattern: str) -> bool:
    repo = tag.rsplit(":", 1)[0]
    return tag == pattern or repo == pattern or re.fullmatch(pattern.replace("*", "[^/]*"), tag) is not None


def _image_or_404(request):
    name = request.match_info["name"]
    try:
        return backend.image_inspect(request.app["root"], name)
    except ApiError as e:
        if e.status == 404:
            raise not_found(f"No such image: {name}") from None
        raise


async def inspect(request: web.Request) -> web.Response:
    doc = dict(_image_or_404(request))
    doc.setdefault("Container", "")
    doc.setdefault("DockerVersion", "")
    doc.setdefault("Size", 0)
    doc["VirtualSize"] = doc["Size"]
    lowers = ((doc.get("GraphDriver") or {}).get("Data") or {}).get("LowerDirs") or []
    doc["GraphDriver"] = {"Name": "overlay", "Data": {"LowerDir": ":".join(str(p) for p in reversed(lowers))}}
    # docker's clients parse these as Go times: an empty string is an error there
    doc["Created"] = doc.get("Created") or "0001-01-01T00:00:00Z"
    doc["Metadata"] = {**(doc.get("Metadata") or {}), "LastTagTime": "0001-01-01T00:00:00Z"}
    if not (doc["Metadata"].get("LastTagTime") or "").strip():
        doc["Metadata"]["LastTagTime"] = "0001-01-01T00:00:00Z"
    return json_response(doc)


async def history(request: web.Request) -> web.Response:
    doc = _image_or_404(request)
    image = backend.image_for(request.app["root"], request.match_info["name"])
    raw = json.loads(image.config.raw)
    rows = []
    for entry in reversed(raw.get("history") or []):
        rows.append({"Id": "<missing>", "Created": container_spec.epoch(entry.get("created")),
                     "CreatedBy": entry.get("created_by", ""), "Tags": None, "Size": 0,
                     "Comment": entry.get("comment", "")})
    if rows:
        rows[0].update(Id=doc["Id"], Tags=doc["RepoTags"] or None)
    return json_response(rows)


async def tag(request: web.Request) -> web.Response:
    repo = request.query.get("repo")
    if not repo:
        raise bad_request("repository name must have at least one component")
    _image_or_404(request)
    target = f"{repo}:{request.query.get('tag') or 'latest'}"
    backend.image_tag(request.app["root"], request.match_info["name"], target)
    events.emit(request.app, "image", "tag", target, {"name": target})
    return web.Response(status=201)


async def remove(request: web.Request) -> web.Response:
    _image_or_404(request)
    lines = await backend.image_remove(request.app["root"], request.match_info["name"], flag(request, "force"))
    out = []
    for line in lines:
        key, _, value = line.partition(": ")
        out.append({key: value})
        events.emit(request.app, "image", "delete" if key == "Deleted" else "untag", value, {"name": value})
    return json_response(out)


async def push(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    ref = _reference(name, request.query.get("tag"))
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    work = asyncio.ensure_future(backend.push(request.app["root"], ref, _ProgressLines(loop, queue)))
    return await _progress(request, work, queue, intro_lines=0)


async def save(request: web.Request) -> web.StreamResponse:
    names = [request.match_info["name"]] if "name" in request.match_info else request.query.getall("names", [])
    if not names:
        raise bad_request("no image names given")
    fd, path = tempfile.mkstemp(dir=backend.scratch_dir(request.app["root"]), prefix="api-save-")
    os.close(fd)
    try:
        await backend.save(request.app["root"], names, path)
        response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
        await response.prepare(request)
        with open(path, "rb") as f:
            while chunk := await asyncio.to_thread(f.read, 1 << 20):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


async def load(request: web.Request) -> web.Response:
    fd, path = tempfile.mkstemp(dir=backend.scratch_dir(request.app["root"]), prefix="api-load-")
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.content.iter_chunked(1 << 20):
                await asyncio.to_thread(f.write, chunk)
        lines = await backend.load(request.app["root"], path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    body = b"".join(json.dumps({"stream": line + "\n"}).encode() + b"\r\n" for line in lines)
    return web.Response(body=body, content_type="application/json")


async def prune(request: web.Request) -> web.Response:
    dangling = filters(request).get("dangling", ["true"])
    everything = dangling[0].lower() in ("false", "0")
    lines = await backend.image_prune(request.app["root"], everything)
    deleted = [{key: value} for key, _, value in (line.partition(": ") for line in lines)]
    return json_response({"ImagesDeleted": deleted or None, "SpaceReclaimed": 0})


def register(router) -> None:
    add_route(router, "GET", "/images/json", list_images)
    add_route(router, "POST", "/images/create", create)
    add_route(router, "POST", "/images/load", load)
    add_route(router, "GET", "/images/get", save)
    add_route(router, "POST", "/images/prune", prune)
    add_route(router, "GET", f"/images/{NAME}/json", inspect)
    add_route(router, "GET", f"/images/{NAME}/history", history)
    add_route(router, "GET", f"/images/{NAME}/get", save)
    add_route(router, "POST", f"/images/{NAME}/tag", tag)
    add_route(router, "POST", f"/images/{NAME}/push", push)
    add_route(router, "DELETE", f"/images/{NAME}", remove)

"""/containers: create, list, inspect, start, stop, kill, restart, pause, unpause, wait, remove,
prune, top, resize. Attach and logs are in node/api/container_io.py, exec in execs.py.

Auto-remove (``--rm``): the engine's own monitor would remove the record the instant the
program exits, and a client's ``wait?condition=removed`` polling the record could miss the exit
code. So a container created here with AutoRemove is recorded without it and flagged
(container_spec.AUTO_REMOVE); this module removes it once it has exited: right away for a
waiting client, else within a second through the reaper task (also at engine start).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re

from aiohttp import web

from node.api import backend, container_spec, events
from node.api.errors import bad_request, conflict, filters, flag, integer, json_response, label_matches, not_found, read_json
from node.api.versions import add_route

log = logging.getLogger("dockyard.api")
_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
POLL = 0.02
RUNNING = ("running", "paused", "restarting")


def _root(request):
    return request.app["root"]


def _container(request):
    ref = request.match_info["id"]
    try:
        return backend.find(_root(request), ref)
    except Exception as e:  # noqa: BLE001 - docker's 404 words
        if getattr(e, "status", 404) == 404:
            raise not_found(f"No such container: {ref}") from None
        raise


def docker_inspect(container) -> dict:
    meta = backend.meta(container)
    doc = backend.inspect(container)
    if doc["State"].get("Running"):
        live = backend.attachment_json(container)  # state.json holds only what the start saw
        if live:
            doc["NetworkSettings"] = {**(doc.get("NetworkSettings") or {}), **live}
    return container_spec.inspect_doc(meta, doc)


async def create(request: web.Request) -> web.Response:
    body = await read_json(request)
    name = request.query.get("name") or None
    if name is not None and not _NAME.match(name):
        raise bad_request(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    image_ref = body.get("Image")
    if not image_ref or not isinstance(image_ref, str):
        raise bad_request("Config cannot be empty in order to create a container")
    try:
        image = backend.image_for(_root(request), image_ref)
    except Exception as e:  # noqa: BLE001
        if getattr(e, "status", 0) == 404:
            raise not_found(f"No such image: {image_ref}") from None
        raise
    options, extra = container_spec.run_options(body, name, backend.image_config(image))
    container = await backend.create(_root(request), options, image_ref, extra)
    return json_response({"Id": container.id, "Warnings": []}, status=201)


def _matches(entry: dict, doc: dict, wanted: dict[str, list[str]]) -> bool:
    for key, values in wanted.items():
        if key == "label" and not label_matches(entry["Labels"], values):
            return False
        if key == "name" and not any(v.lstrip("/") in entry["Names"][0] for v in values):
            return False
        if key == "id" and not any(entry["Id"].startswith(v) for v in values):
            return False
        if key == "status" and entry["State"] not in values:
            return False
        if key == "ancestor" and not any(v in (entry["Image"], entry["ImageID"]) for v in values):
            return False
        if key == "network" and not any(v in entry["NetworkSettings"]["Networks"] for v in values):
            return False
        if key == "volume" and not any(v in (m["Name"], m["Destination"]) for m in entry["Mounts"] for v in values):
            return False
        if key == "exited" and not (entry["State"] == "exited" and str(doc["State"]["ExitCode"]) in values):
            return False
    return True


async def list_containers(request: web.Request) -> web.Response:
    root = _root(request)
    show_all = flag(request, "all")
    wanted = filters(request)
    limit = integer(request, "limit", -1)

    def rows():
        out = []
        for c in backend.containers(root):
            try:
                doc = docker_inspect(c)
            except Exception:  # noqa: BLE001 - a record half-removed by someone else
                continue
            if not show_all and doc["State"]["Status"] not in RUNNING and "status" not in wanted:
                continue
            entry = container_spec.ps_entry(backend.meta(c), doc, backend.describe(backend.state(c)))
            if _matches(entry, doc, wanted):
                out.append(entry)
        return out
    out = await asyncio.to_thread(rows)
    if limit is not None and limit > 0:
        out = out[:limit]
    return json_response(out)


async def inspect(request: web.Request) -> web.Response:
    container = _container(request)
    return json_response(await asyncio.to_thread(docker_inspect, container))


async def start(request: web.Request) -> web.Response:
    container = _container(request)
    await read_json(request)  # a body is deprecated, but must still be JSON
    state = backend.state(container)
    if state.get("Status") in ("running", "paused"):
        return web.Response(status=304)
    attach_fd = request.app["pending_attach"].pop(container.id, None)
    if attach_fd is not None:
        await _start_attached(request, container, attach_fd)
    else:
        await backend.start(_root(request), request.app["launcher"], container)
    await _join_extra_networks(request, container)
    return web.Response(status=204)


async def _join_extra_networks(request, container) -> None:
    """The networks beyond the first, which the engine's start does not join by itself."""
    for net in backend.meta(container).get(container_spec.EXTRA_NETWORKS) or []:
        try:
            await backend.network_connect(_root(request), container.id, net["Name"], net.get("Aliases") or [],
                                          net.get("IP"))
        except backend.ApiError as e:
            if "already connected" not in e.message:
                raise


async def _start_attached(request, container, fd: int) -> None:
    """Start under a detached monitor whose first attach client is a waiting attach's socket
    (see container_io); answers once the program runs, or with why it could not start."""
    try:
        result = await request.app["launcher"].call("start_attached",
                                                    {"root": str(_root(request)), "cid": container.id}, (fd,))
    finally:
        os.close(fd)
    if "error" in result:
        raise backend.ApiError(result.get("status", 500), result["error"])


def _timeout(request) -> float | None:
    value = request.query.get("t") or request.query.get("timeout")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise bad_request(f"invalid value for t: {value!r}") from None


async def stop(request: web.Request) -> web.Response:
    container = _container(request)
    if backend.state(container).get("Status") not in RUNNING:
        return web.Response(status=304)
    await backend.stop(container, _timeout(request))
    await _maybe_autoremove(request.app, container)
    return web.Response(status=204)


async def restart(request: web.Request) -> web.Response:
    container = _container(request)
    if backend.state(container).get("Status") in RUNNING:
        await backend.stop(container, _timeout(request))
    await backend.start(_root(request), request.app["launcher"], container)
    events.container_event(container, "restart")
    return web.Response(status=204)


async def kill(request: web.Request) -> web.Response:
    container = _container(request)
    await backend.kill(container, request.query.get("signal") or "KILL")
    return web.Response(status=204)


async def pause(request: web.Request) -> web.Response:
    container = _container(request)
    await backend.pause(container)
    return web.Response(status=204)


async def unpause(request: web.Request) -> web.Response:
    container = _container(request)
    await backend.unpause(container)
    return web.Response(status=204)


async def remove(request: web.Request) -> web.Response:
    container = _container(request)
    await backend.remove(_root(request), container, flag(request, "force"), flag(request, "v"))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    removed = await backend.prune_containers(_root(request))
    return json_response({"ContainersDeleted": removed or None, "SpaceReclaimed": 0})


async def wait(request: web.Request) -> web.Response:
    """``condition``: not-running (default), next-exit, removed — as the daemon reads them."""
    container = _container(request)
    condition = request.query.get("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise bad_request(f"invalid condition: {condition!r}")
    # The daemon answers the status line at once and the body at the exit: the docker CLI
    # waits for those headers before it attaches and starts (its ContainerWait is synchronous).
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    first = backend.state(container)
    finished_before = first.get("FinishedAt")
    code = int(first.get("ExitCode", 0))
    auto_remove = backend.meta(container).get(container_spec.AUTO_REMOVE)  # read once: it may vanish
    while True:
        try:
            if not backend.container_exists(_root(request), container.id):
                break  # removed (by us, a peer or the CLI)
            state = backend.state(container)
        except (OSError, ValueError, KeyError):
            break  # removed while we looked
        status = state.get("Status")
        if status == "removed":
            break
        code = int(state.get("ExitCode", 0))
        ended = status not in RUNNING and (condition == "not-running" or state.get("FinishedAt") != finished_before)
        if ended and condition != "removed":
            break
        if ended and condition == "removed" and auto_remove:
            await _maybe_autoremove(request.app, container)
            break
        if request.transport is None or request.transport.is_closing():
            return response  # the client gave up waiting
        await asyncio.sleep(POLL)
    await response.write(json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n")
    await response.write_eof()
    return response


async def _maybe_autoremove(app, container) -> None:
    try:
        if not backend.meta(container).get(container_spec.AUTO_REMOVE):
            return
        if backend.state(container).get("Status") != "exited":
            return
        await backend.remove(app["root"], container, True, True)
    except Exception as e:  # noqa: BLE001 - already gone, or the reaper will retry
        log.debug("auto-remove of %s: %s", container.id[:12], e)


async def reaper(app) -> None:
    """Remove exited auto-remove containers nobody waited for (``run -d --rm``)."""
    while True:
        try:
            for c in await asyncio.to_thread(backend.containers, app["root"]):
                try:
                    if backend.meta(c).get(container_spec.AUTO_REMOVE):
                        await _maybe_autoremove(app, c)
                except (OSError, ValueError, KeyError):
                    continue
        except Exception:  # noqa: BLE001
            log.exception("auto-remove reaper")
        await asyncio.sleep(1.0)


async def resize(request: web.Request) -> web.Response:
    """TIOCSWINSZ on the container's pty, through its monitor's attach socket."""
    container = _container(request)
    rows, cols = integer(request, "h", 0), integer(request, "w", 0)
    if backend.state(container).get("Status") not in RUNNING:
        raise conflict(f"Container {container.id} is not running")
    if backend.meta(container)["Config"].get("Tty"):
        await asyncio.to_thread(backend.attach_resize, container, rows, cols)
    return web.Response(status=200)


def register(router) -> None:
    add_route(router, "POST", "/containers/create", create)
    add_route(router, "GET", "/containers/json", list_containers)
    add_route(router, "POST", "/containers/prune", prune)
    add_route(router, "GET", "/containers/{id}/json", inspect)
    add_route(router, "POST", "/containers/{id}/start", start)
    add_route(router, "POST", "/containers/{id}/stop", stop)
    add_route(router, "POST", "/containers/{id}/restart", restart)
    add_route(router, "POST", "/containers/{id}/kill", kill)
    add_route(router, "POST", "/containers/{id}/pause", pause)
    add_route(router, "POST", "/containers/{id}/unpause", unpause)
    add_route(router, "POST", "/containers/{id}/wait", wait)
    add_route(router, "DELETE", "/containers/{id}", remove)
    add_route(router, "POST", "/containers/{id}/resize", resize)

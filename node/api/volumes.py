"""/volumes: create, list, inspect, remove, prune (the engine's local-driver volumes)."""
from __future__ import annotations

from aiohttp import web

from node.api import backend, events
from node.api.errors import bad_request, filters, flag, json_response, label_matches, read_json
from node.api.versions import add_route


def _doc(v: dict) -> dict:
    return {"Name": v["Name"], "Driver": v.get("Driver", "local"), "Mountpoint": v["Mountpoint"],
            "CreatedAt": v.get("CreatedAt", ""), "Labels": v.get("Labels") or {}, "Scope": "local",
            "Options": v.get("Options") or {}}


async def create(request: web.Request) -> web.Response:
    body = await read_json(request)
    driver = body.get("Driver") or "local"
    if driver != "local":
        raise bad_request(f"volume driver {driver!r} is not supported (only local)")
    labels = body.get("Labels") or {}
    if not isinstance(labels, dict):
        raise bad_request("invalid Labels: an object was expected")
    v = await backend.volume_create(request.app["root"], body.get("Name") or None, labels)
    events.emit(request.app, "volume", "create", v["Name"], {"driver": "local"})
    return json_response(_doc(v), status=201)


async def list_volumes(request: web.Request) -> web.Response:
    wanted = filters(request)
    root = request.app["root"]
    out = []
    for v in backend.volumes(root):
        doc = _doc(v)
        if "label" in wanted and not label_matches(doc["Labels"], wanted["label"]):
            continue
        if "name" in wanted and not any(n in doc["Name"] for n in wanted["name"]):
            continue
        if "dangling" in wanted:
            dangling = not backend.volume_users(root, doc["Name"])
            if str(dangling).lower() not in [d.lower() for d in wanted["dangling"]] and \
                    ("1" if dangling else "0") not in wanted["dangling"]:
                continue
        out.append(doc)
    return json_response({"Volumes": out, "Warnings": None})


async def inspect(request: web.Request) -> web.Response:
    return json_response(_doc(backend.volume(request.app["root"], request.match_info["name"])))


async def remove(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await backend.volume_remove(request.app["root"], name, flag(request, "force"))
    events.emit(request.app, "volume", "destroy", name, {"driver": "local"})
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    root = request.app["root"]
    gone = []
    for v in backend.volumes(root):
        if not backend.volume_users(root, v["Name"]):
            await backend.volume_remove(root, v["Name"], False)
            gone.append(v["Name"])
    return json_response({"VolumesDeleted": gone or None, "SpaceReclaimed": 0})


def register(router) -> None:
    add_route(router, "POST", "/volumes/create", create)
    add_route(router, "GET", "/volumes", list_volumes)
    add_route(router, "POST", "/volumes/prune", prune)
    add_route(router, "GET", "/volumes/{name}", inspect)
    add_route(router, "DELETE", "/volumes/{name}", remove)

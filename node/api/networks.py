"""/networks: create, list, inspect, remove, connect, disconnect, prune.

node.network keeps bridge networks (the default "bridge" one is made on first use and removed
when idle); "host" and "none" are modes, shown as docker shows them. What node.network does
not record — labels, driver options, the Internal/Attachable flags a client sent — is kept by
this module in ROOT/engine-api/networks/<id>.json and removed with the network.
"""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from aiohttp import web

from node.api import backend, container_spec, events
from node.api.containers import RUNNING
from node.api.errors import ApiError, bad_request, conflict, filters, json_response, label_matches, not_found, read_json
from node.api.versions import add_route

PSEUDO = {"host": "host", "none": "null"}


def _extras_path(root, net_id: str) -> Path:
    return Path(root) / "engine-api" / "networks" / f"{net_id}.json"


def _extras(root, net_id: str) -> dict:
    try:
        return json.loads(_extras_path(root, net_id).read_text())
    except (OSError, ValueError):
        return {}


def _doc(root, net: dict) -> dict:
    extras = _extras(root, net["Id"])
    doc = dict(net)
    doc.update(Labels=extras.get("Labels") or {}, Internal=bool(extras.get("Internal")),
               Attachable=bool(extras.get("Attachable", True)), EnableIPv6=False, Ingress=False,
               ConfigOnly=False, ConfigFrom={"Network": ""}, Scope="local")
    if net["Name"] != "bridge":
        doc["Options"] = extras.get("Options") or {}
    doc["IPAM"] = {**doc.get("IPAM", {}), "Options": None}
    return doc


def _pseudo(name: str) -> dict:
    return {"Name": name, "Id": name, "Created": "0001-01-01T00:00:00Z", "Scope": "local",
            "Driver": PSEUDO.get(name, "bridge"), "EnableIPv6": False, "Internal": False,
            "Attachable": False, "Ingress": False, "IPAM": {"Driver": "default", "Config": [], "Options": None},
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": {}, "Options": {}, "Labels": {}}


async def _all(root) -> list[dict]:
    # node.network may reach the kernel (pyroute2 runs an event loop of its own): in a thread
    docs = [_doc(root, n) for n in await asyncio.to_thread(backend.networks, root)]
    names = {d["Name"] for d in docs}
    docs += [_pseudo(n) for n in ("bridge", "host", "none") if n not in names]
    return docs


async def _find(root, ref: str) -> dict:
    for doc in await _all(root):
        if ref in (doc["Name"], doc["Id"]) or (len(ref) >= 3 and doc["Id"].startswith(ref)):
            return doc
    raise not_found(f"network {ref} not found")


async def list_networks(request: web.Request) -> web.Response:
    wanted = filters(request)
    out = []
    for doc in await _all(request.app["root"]):
        if "name" in wanted and not any(n in doc["Name"] for n in wanted["name"]):
            continue
        if "id" in wanted and not any(doc["Id"].startswith(i) for i in wanted["id"]):
            continue
        if "label" in wanted and not label_matches(doc["Labels"], wanted["label"]):
            continue
        if "driver" in wanted and doc["Driver"] not in wanted["driver"]:
            continue
        if "type" in wanted:
            kind = "builtin" if doc["Name"] in ("bridge", "host", "none") else "custom"
            if kind not in wanted["type"]:
                continue
        out.append(doc)
    return json_response(out)


async def inspect(request: web.Request) -> web.Response:
    return json_response(await _find(request.app["root"], request.match_info["id"]))


async def create(request: web.Request) -> web.Response:
    body = await read_json(request)
    root = request.app["root"]
    name = body.get("Name")
    if not name or not isinstance(name, str):
        raise bad_request("network name is required")
    driver = body.get("Driver") or "bridge"
    if driver != "bridge":
        raise bad_request(f"network driver {driver!r} is not supported (only bridge)")
    if name in ("bridge", "host", "none"):
        raise ApiError(403, f"{name} is a pre-defined network and cannot be created")
    if any(d["Name"] == name for d in await _all(root)):
        raise conflict(f"network with name {name} already exists")
    configs = ((body.get("IPAM") or {}).get("Config")) or []
    subnet = (configs[0] or {}).get("Subnet") if configs else None
    gateway = (configs[0] or {}).get("Gateway") if configs else None
    net = await backend.network_create(root, name, subnet, gateway)
    path = _extras_path(root, net["Id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"Labels": body.get("Labels") or {}, "Options": body.get("Options") or {},
                               "Internal": bool(body.get("Internal")),
                               "Attachable": bool(body.get("Attachable", True))}))
    os.replace(tmp, path)
    events.emit(request.app, "network", "create", net["Id"], {"name": name, "type": "bridge"})
    return json_response({"Id": net["Id"], "Warning": ""}, status=201)


async def remove(request: web.Request) -> web.Response:
    root = request.app["root"]
    doc = await _find(root, request.match_info["id"])
    if doc["Name"] in ("bridge", "host", "none"):
        raise ApiError(403, f"{doc['Name']} is a pre-defined network and cannot be removed")
    users = [c.name for c in backend.containers(root)
             if backend.meta(c)["HostConfig"].get("NetworkMode") == doc["Name"]
             and backend.state(c).get("Status") in RUNNING]
    if users:
        raise ApiError(403, f"error while removing network: network {doc['Name']} id {doc['Id']} "
                            f"has active endpoints ({', '.join(users)})")
    await backend.network_remove(root, doc["Name"])
    _extras_path(root, doc["Id"]).unlink(missing_ok=True)
    events.emit(request.app, "network", "destroy", doc["Id"], {"name": doc["Name"], "type": "bridge"})
    return web.Response(status=204)


async def connect(request: web.Request) -> web.Response:
    root = request.app["root"]
    doc = await _find(root, request.match_info["id"])
    body = await read_json(request)
    ref = body.get("Container")
    if not ref or not isinstance(ref, str):
        raise bad_request("Container is required")
    container = _container_or_404(root, ref)
    endpoint = body.get("EndpointConfig") or {}
    aliases = [a for a in endpoint.get("Aliases") or [] if isinstance(a, str)]
    ip = (endpoint.get("IPAMConfig") or {}).get("IPv4Address") or None
    if backend.state(container).get("Status") in ("running", "paused"):
        await backend.network_connect(root, container.id, doc["Name"], aliases, ip)
    else:
        mode = backend.meta(container)["HostConfig"].get("NetworkMode")
        if mode in (None, "", "none", "default", doc["Name"]):
            known = backend.meta(container)["Config"].get("NetworkAliases") or [] if mode == doc["Name"] else []
            backend.set_network(container, doc["Name"], [*known, *aliases])
        else:  # joined right after the next start (containers.start)
            backend.add_network_later(container, container_spec.EXTRA_NETWORKS, doc["Name"], aliases, ip)
    events.emit(request.app, "network", "connect", doc["Id"], {"name": doc["Name"], "container": container.id})
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.Response:
    root = request.app["root"]
    doc = await _find(root, request.match_info["id"])
    body = await read_json(request)
    container = _container_or_404(root, str(body.get("Container") or ""))
    if backend.state(container).get("Status") in ("running", "paused"):
        await backend.network_disconnect(root, container.id, doc["Name"])
    elif backend.meta(container)["HostConfig"].get("NetworkMode") == doc["Name"]:
        backend.set_network(container, None, [])
    events.emit(request.app, "network", "disconnect", doc["Id"], {"name": doc["Name"], "container": container.id})
    return web.Response(status=200)


def _container_or_404(root, ref: str):
    try:
        return backend.find(root, ref)
    except ApiError:
        raise not_found(f"No such container: {ref}") from None


async def prune(request: web.Request) -> web.Response:
    root = request.app["root"]
    used = {backend.meta(c)["HostConfig"].get("NetworkMode") for c in backend.containers(root)}
    gone = []
    for doc in await _all(root):
        if doc["Name"] in ("bridge", "host", "none") or doc["Name"] in used or doc["Containers"]:
            continue
        await backend.network_remove(root, doc["Name"])
        _extras_path(root, doc["Id"]).unlink(missing_ok=True)
        gone.append(doc["Name"])
    return json_response({"NetworksDeleted": gone or None})


def register(router) -> None:
    add_route(router, "GET", "/networks", list_networks)
    add_route(router, "POST", "/networks/create", create)
    add_route(router, "POST", "/networks/prune", prune)
    add_route(router, "GET", "/networks/{id}", inspect)
    add_route(router, "DELETE", "/networks/{id}", remove)
    add_route(router, "POST", "/networks/{id}/connect", connect)
    add_route(router, "POST", "/networks/{id}/disconnect", disconnect)

"""``/events``: what happened through this engine, as docker's event objects.

Only actions taken through the API are seen (the CLI has no daemon to tell); a ring of recent
events answers ``since``/``until``, subscribers get new ones as they come.
"""
from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from node.api.errors import filters, integer
from node.api.streams import stream_response
from node.api.versions import add_route

KEEP = 256


def setup(app: web.Application) -> None:
    app["events"] = []
    app["event_queues"] = set()


def emit(app: web.Application, kind: str, action: str, actor_id: str, attributes: dict | None = None) -> None:
    now = time.time_ns()
    doc = {"Type": kind, "Action": action, "Actor": {"ID": actor_id, "Attributes": attributes or {}},
           "scope": "local", "time": now // 1_000_000_000, "timeNano": now}
    if kind == "container":
        doc.update(status=action, id=actor_id, **({"from": attributes["image"]} if attributes and "image" in attributes else {}))
    ring = app["events"]
    ring.append(doc)
    del ring[:-KEEP]
    for queue in list(app["event_queues"]):
        queue.put_nowait(doc)


def _wanted(doc: dict, wanted: dict[str, list[str]]) -> bool:
    checks = {"type": doc["Type"], "event": doc["Action"]}
    for key, value in checks.items():
        if key in wanted and value not in wanted[key]:
            return False
    if "container" in wanted:
        if doc["Type"] != "container":
            return False
        name = doc["Actor"]["Attributes"].get("name", "")
        if not any(doc["Actor"]["ID"].startswith(v) or v == name for v in wanted["container"]):
            return False
    return True


async def events(request: web.Request) -> web.StreamResponse:
    since = integer(request, "since", None)
    until = integer(request, "until", None)
    wanted = filters(request)
    response = await stream_response(request, "application/json")
    queue: asyncio.Queue = asyncio.Queue()
    request.app["event_queues"].add(queue)
    try:
        if since is not None:
            for doc in list(request.app["events"]):
                if doc["time"] >= since and (until is None or doc["time"] <= until) and _wanted(doc, wanted):
                    await response.write(json.dumps(doc).encode() + b"\n")
        while until is None or time.time() < until:
            timeout = None if until is None else max(0.0, until - time.time())
            try:
                doc = await asyncio.wait_for(queue.get(), timeout)
            except asyncio.TimeoutError:
                break
            if _wanted(doc, wanted):
                await response.write(json.dumps(doc).encode() + b"\n")
    finally:
        request.app["event_queues"].discard(queue)
    await response.write_eof()
    return response


def register(router) -> None:
    add_route(router, "GET", "/events", events)

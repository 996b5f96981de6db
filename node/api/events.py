"""``/events``: what happened on this node, as docker's event objects, read from the node's
event journal (node/engine/events.py). The engine writes container events itself, whoever
asked for the change (this API, the `dockyard` CLI, a monitor seeing an exit); this module
adds the image, network and volume events of actions taken through the API.

``since`` replays the journal from that time, ``until`` ends the stream at that time (at once
when it is past); without ``until`` new events stream until the client goes away.
"""
from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from node.api.errors import bad_request, filters
from node.api.streams import stream_response
from node.api.versions import add_route
from node.engine import events as journal

POLL = 0.1


def setup(app: web.Application) -> None:
    """Nothing to hold in memory: the journal is the history."""


def emit(app: web.Application, kind: str, action: str, actor_id: str, attributes: dict | None = None) -> None:
    journal.emit(app["root"], kind, action, actor_id, attributes)


def container_event(container, action: str) -> None:
    journal.container_event(container, action)


def _time(request: web.Request, name: str) -> int | None:
    """A unix time in nanoseconds from docker's ``SECONDS[.NANOS]``."""
    value = request.query.get(name)
    if not value:
        return None
    seconds, _, frac = value.partition(".")
    try:
        return int(seconds) * 1_000_000_000 + int((frac + "000000000")[:9] if frac else 0)
    except ValueError:
        raise bad_request(f"invalid value for {name}: {value!r}") from None


async def events(request: web.Request) -> web.StreamResponse:
    since = _time(request, "since")
    until = _time(request, "until")
    wanted = filters(request)
    root = request.app["root"]
    follower = journal.Follower(root)  # made first: nothing written during the replay is lost
    started = time.time_ns() - 1_000_000_000  # (a writer's clock read may precede its append)
    replayed: set = set()  # events both replayed and then seen by the follower go out once
    response = await stream_response(request, "application/json")

    async def send(doc: dict) -> None:
        await response.write(json.dumps(doc, separators=(",", ":")).encode() + b"\n")
    try:
        if since is not None:
            for doc in await asyncio.to_thread(journal.history, root):
                if doc["timeNano"] >= since and (until is None or doc["timeNano"] <= until) \
                        and journal.matches(doc, wanted):
                    await send(doc)
                    if doc["timeNano"] >= started:
                        replayed.add(_key(doc))
        while until is None or time.time_ns() < until:
            if request.transport is None or request.transport.is_closing():
                break
            for doc in follower.poll():
                if until is not None and doc["timeNano"] > until:
                    break
                if journal.matches(doc, wanted) and _key(doc) not in replayed:
                    await send(doc)
            await asyncio.sleep(POLL)
    finally:
        follower.close()
    await response.write_eof()
    return response


def _key(doc: dict) -> tuple:
    return doc["timeNano"], doc.get("Type"), doc.get("Action"), (doc.get("Actor") or {}).get("ID")


def register(router) -> None:
    add_route(router, "GET", "/events", events)

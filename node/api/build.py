"""``POST /build``: the classic build API (what ``DOCKER_BUILDKIT=0`` clients use): a tar of the
context in the body, options in the query, docker's JSON progress stream back.

It hands the context to node.build (through node.api.backend.build_entry). Until that entry
point exists this answers docker's error for a daemon without the classic builder.
"""
from __future__ import annotations

from aiohttp import web

from node.api import backend
from node.api.errors import ApiError, json_response
from node.api.versions import add_route


async def build(request: web.Request) -> web.StreamResponse:
    entry = backend.build_entry()
    if entry is None:
        raise ApiError(501, "the classic builder (/build) is not available in this Dockyard engine: "
                            "node.build has no entry point for it yet; use `dockyard build` on the node")
    raise ApiError(501, "/build is not wired to node.build yet")


async def prune(request: web.Request) -> web.Response:
    return json_response({"CachesDeleted": None, "SpaceReclaimed": 0})


def register(router) -> None:
    add_route(router, "POST", "/build", build)
    add_route(router, "POST", "/build/prune", prune)

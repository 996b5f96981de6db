"""Tag lists of a cached repository: the upstream's list when it answers, else the cached tags.

The list is read whole from the upstream and paginated here (n, last, Link), so the Link
header names this registry's path; the ``name`` is the one the client asked for.
"""
from __future__ import annotations

import json

from aiohttp import web

from ..api.common import next_link, pagination
from .routing import Target
from .upstream import UpstreamNotFound, UpstreamUnavailable


async def list_tags(target: Target, request: web.Request, handler) -> web.StreamResponse:
    n, last = pagination(request)
    try:
        doc = json.loads(await target.client.tags(target.remote))
        tags = sorted(t for t in doc.get("tags") or [] if isinstance(t, str))
    except (UpstreamUnavailable, UpstreamNotFound, ValueError, AttributeError):
        return await handler(request)  # what the cache holds
    name = request.match_info["name"]
    if last:
        tags = [t for t in tags if t > last]
    headers = {}
    if n is not None and len(tags) > n:
        tags = tags[:n]
        if n:
            headers["Link"] = next_link(f"/v2/{name}/tags/list", n, tags[-1])
    return web.json_response({"name": name, "tags": tags if n != 0 else []}, headers=headers)

"""GET /v2/<name>/tags/list with n/last pagination and a Link header, in lexical order."""
from __future__ import annotations

from aiohttp import web

from .common import index, next_link, pagination, repo_name
from .errors import NameUnknown


async def list_tags(request: web.Request) -> web.Response:
    name = repo_name(request)
    n, last = pagination(request)
    limit = None if n is None else n + 1  # one extra row tells whether a next page exists
    tags = await index(request).list_tags(name, limit, last)
    if tags is None:
        raise NameUnknown(detail={"name": name})
    headers = {}
    if n == 0:
        tags = []
    elif n is not None and len(tags) > n:
        tags = tags[:n]
        headers["Link"] = next_link(f"/v2/{name}/tags/list", n, tags[-1])
    return web.json_response({"name": name, "tags": tags}, headers=headers)

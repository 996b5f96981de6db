"""GET /v2/_catalog with n/last pagination and a Link header, in lexical order."""
from __future__ import annotations

from aiohttp import web

from .common import index, next_link, pagination


async def list_repositories(request: web.Request) -> web.Response:
    n, last = pagination(request)
    limit = None if n is None else n + 1
    repos = await index(request).list_repositories(limit, last)
    headers = {}
    if n == 0:
        repos = []
    elif n is not None and len(repos) > n:
        repos = repos[:n]
        headers["Link"] = next_link("/v2/_catalog", n, repos[-1])
    return web.json_response({"repositories": repos}, headers=headers)

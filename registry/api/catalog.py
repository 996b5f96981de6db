"""GET /v2/_catalog with n/last pagination and a Link header, in lexical order.

Only the repositories the caller may pull are listed (``may_pull``: registry.auth's visibility
function; everything when auth is off or for admins, the plain keyset walk).
"""
from __future__ import annotations

from aiohttp import web

from .common import index, may_pull, next_link, pagination

BATCH = 500  # names read per query while filtering


async def _visible_page(request: web.Request, n: int | None, last: str | None) -> list[str]:
    """Up to n + 1 visible names after ``last`` (all of them when n is None)."""
    visible = may_pull(request)
    if visible is None:
        return await index(request).list_repositories(None if n is None else n + 1, last)
    out: list[str] = []
    while n is None or len(out) <= n:
        names = await index(request).list_repositories(BATCH, last)
        out += [name for name in names if visible(name)]
        if len(names) < BATCH:
            break
        last = names[-1]
    return out


async def list_repositories(request: web.Request) -> web.Response:
    n, last = pagination(request)
    repos = [] if n == 0 else await _visible_page(request, n, last)
    headers = {}
    if n is not None and len(repos) > n:
        repos = repos[:n]
        headers["Link"] = next_link("/v2/_catalog", n, repos[-1])
    return web.json_response({"repositories": repos}, headers=headers)

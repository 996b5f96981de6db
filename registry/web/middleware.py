"""The catalog's one middleware: its HTML 404 under /ui and the CSRF guard of its forms.

Every request goes through every middleware of the app, the /v2/ API's included, and each
layer is a coroutine frame per request: the catalog's two concerns (``html_errors`` and
``csrf_guard`` were two layers) are one here, and a request outside /ui and /auth/ passes
through with one prefix check.
"""
from __future__ import annotations

from aiohttp import web

from . import csrf
from .views import not_found, render

CATALOG_PREFIXES = ("/ui", "/auth/")


@web.middleware
async def catalog_middleware(request: web.Request, handler):
    path = request.path
    if not path.startswith(CATALOG_PREFIXES):
        return await handler(request)
    try:
        # A POST to a form (under /ui/ or /auth/) is refused unless its CSRF token matches.
        if request.method not in csrf.SAFE_METHODS and path.startswith(csrf.GUARDED) and not await csrf.check(request):
            return render(request, "refused.html", status=403)
        return await handler(request)
    except web.HTTPNotFound:
        # Unknown paths under /ui get the catalog's HTML 404 instead of aiohttp's text one.
        if path.startswith("/ui"):
            return not_found(request, path)
        raise

"""CSRF protection for every form the catalog serves (its actions, sign-in, sign-out).

Double-submit token: the first page a browser gets sets ``dockyard_csrf`` (random, HttpOnly,
SameSite=Strict) and every form carries the same value in a hidden ``csrf_token`` field. A
POST under /ui/ or /auth/ is refused (403, nothing done) unless the field equals the cookie
(compared in constant time) and, when the browser sends an ``Origin``, it is this site. Another
site can make a browser send the cookie's request but can neither read the cookie nor the page
that holds the token, so it cannot fill in the field. No state on the server: any replica checks
any form.
"""
from __future__ import annotations

import hmac
import secrets
from http.cookies import SimpleCookie

from aiohttp import web

COOKIE = "dockyard_csrf"
FIELD = "csrf_token"
GUARDED = ("/ui/", "/auth/")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_NEW = "dockyard.csrf_new"


def _valid(value: str | None) -> bool:
    return bool(value) and 32 <= len(value) <= 64 and value.replace("-", "").replace("_", "").isalnum()


def token(request: web.Request) -> str:
    """This browser's token (made on its first page; the response then sets the cookie)."""
    current = request.cookies.get(COOKIE)
    if _valid(current):
        return current  # type: ignore[return-value]
    made = request.get(_NEW)
    if made is None:
        made = request[_NEW] = secrets.token_urlsafe(32)
    return made


async def set_cookie(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: hand out a token made while rendering this response."""
    made = request.get(_NEW)
    if made is not None:  # a header, not response.set_cookie: cookies are serialised before this hook
        cookie: SimpleCookie = SimpleCookie()
        cookie[COOKIE] = made
        morsel = cookie[COOKIE]
        morsel["httponly"], morsel["samesite"], morsel["path"] = True, "Strict", "/"
        if request.secure:
            morsel["secure"] = True
        response.headers.add("Set-Cookie", morsel.OutputString())


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:  # older browsers and non-browser clients; the token still decides
        return True
    # The host only: behind a TLS-terminating proxy the scheme seen here differs from the browser's.
    return origin.partition("://")[2] == request.host


async def check(request: web.Request) -> bool:
    if not _same_origin(request):
        return False
    cookie = request.cookies.get(COOKIE)
    if not _valid(cookie):
        return False
    try:
        form = await request.post()
    except ValueError:  # not a form body
        return False
    sent = form.get(FIELD)
    return isinstance(sent, str) and hmac.compare_digest(sent.encode(), cookie.encode())  # type: ignore[union-attr]

"""Sign-in for people using the HTML catalog: ``/auth/login`` (a form) and ``/auth/logout``.

A successful sign-in sets ``dockyard_session``: a JWT from the token service with its own
audience (``<service>#session``), HttpOnly, SameSite=Lax, Secure over HTTPS. The middleware
reads it on catalog pages, so the catalog shows what that user may pull. Failed sign-ins count
against the same per-client limit as every other login. The page has no script and no inline
style, so the catalog's CSP holds here too.
"""
from __future__ import annotations

import html
from typing import Callable

from aiohttp import web

from ..api.errors import TooManyRequests
from .middleware import AUTH, password_identity
from .service import SESSION_COOKIE

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - Dockyard</title>
<link rel="stylesheet" href="/ui/static/style.css"></head>
<body><main class="login">
<h1>Sign in</h1>
{message}
<form method="post" action="/auth/login">
<input type="hidden" name="next" value="{next}">
<label>User <input name="username" autocomplete="username" required value="{user}"></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>
</main></body></html>
"""


# The catalog (registry.web) renders this page with the site's header and a CSRF field when it
# is enabled: (request, message, next, user, status) -> Response. Without it, the plain page below.
PAGE_RENDERER: web.AppKey[Callable[..., web.Response]] = web.AppKey("auth_login_page")


def _safe_next(value: str | None) -> str:
    """Only same-site paths: ``/ui/...`` yes, ``//evil.example`` or ``https://...`` no."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or len(value) > 2000:
        return "/"
    return value


def _page(request: web.Request, message: str = "", next_: str = "/", user: str = "", status: int = 200) -> web.Response:
    renderer = request.app.get(PAGE_RENDERER)
    if renderer is not None:
        return renderer(request, message, next_, user, status)
    body = PAGE.format(message=f'<p class="error">{html.escape(message)}</p>' if message else "",
                       next=html.escape(next_), user=html.escape(user))
    return web.Response(text=body, content_type="text/html", status=status,
                        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY",
                                 "Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'"})


async def login_form(request: web.Request) -> web.Response:
    return _page(request, next_=_safe_next(request.query.get("next")))


async def login_submit(request: web.Request) -> web.Response:
    svc = request.app[AUTH]
    form = await request.post()
    user, password = str(form.get("username") or "")[:128], str(form.get("password") or "")
    next_ = _safe_next(str(form.get("next") or "/"))
    try:
        who = await password_identity(svc, request, user, password)
    except TooManyRequests as e:
        page = _page(request, "Too many failed sign-ins; try again later.", next_, user, 429)
        page.headers.update(e.headers)
        return page
    if who is None:
        return _page(request, "Incorrect user name or password.", next_, user, 401)
    response = web.HTTPSeeOther(next_)
    response.set_cookie(SESSION_COOKIE, svc.tokens.issue_session(who.name or ""), httponly=True,
                        samesite="Lax", secure=request.secure, path="/", max_age=int(svc.settings.session_ttl))
    raise response


async def logout(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


def add_login_routes(app: web.Application) -> None:
    app.router.add_get("/auth/login", login_form, name="auth.login")
    app.router.add_post("/auth/login", login_submit, name="auth.login_post")
    app.router.add_post("/auth/logout", logout, name="auth.logout")

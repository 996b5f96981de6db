"""Who is browsing, and which repositories they may see: those they may pull.

The catalog never decides access itself; it asks registry.auth (``visible_filter``,
``current_identity``). Both are looked up when called, so the catalog works the same with auth
off (every name visible: ``None``, the fast SQL path) and on.
"""
from __future__ import annotations

from aiohttp import web

from .. import auth
from .service import Access


def may_pull_filter(request: web.Request) -> Access:
    """A predicate ``name -> bool`` for this request, or None when every name is visible."""
    visible = getattr(auth, "visible_filter", None)
    return visible(request) if visible is not None else None


def signed_in_as(request: web.Request) -> tuple[bool, str | None]:
    """(sign-in available, the signed-in user's name or None), for the page header."""
    service_key = getattr(auth, "AUTH", None)
    current = getattr(auth, "current_identity", None)
    if service_key is None or current is None or request.app.get(service_key) is None:
        return False, None
    who = current(request)
    return True, (None if getattr(who, "anonymous", True) else getattr(who, "name", None))

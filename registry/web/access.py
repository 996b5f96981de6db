"""Who is browsing, and which repositories they may see: those they may pull.

The catalog never decides access itself; it asks registry.auth (``visible_filter``,
``current_identity``). Both are looked up when called, so the catalog works the same with auth
off (every name visible: ``None``, the fast SQL path) and on.
"""
from __future__ import annotations

from aiohttp import web

from oci.reference import validate_name

from .. import auth
from .service import Access, CatalogService, NotFound, pick


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


def catalog_service(request: web.Request) -> CatalogService:
    from . import SERVICE

    return request.app[SERVICE]


def visible_name(request: web.Request) -> str:
    """The repository name in the URL, if it is valid and this caller may pull it; else NotFound
    (never "forbidden": a hidden repository's existence is not confirmed)."""
    name = request.match_info["name"]
    try:
        validate_name(name)
    except ValueError:
        raise NotFound(name) from None
    may_pull = may_pull_filter(request)
    if may_pull is not None and not may_pull(name):
        raise NotFound(name)
    return name


def sorting(request: web.Request, allowed: tuple[str, ...]) -> tuple[str, bool]:
    """(?sort= among ``allowed``, descending?): names ascend by default, the rest descend."""
    sort = pick(request.query.get("sort"), allowed, "name")
    order = request.query.get("order")
    return sort, (order == "desc") if order in ("asc", "desc") else sort != "name"

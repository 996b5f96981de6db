"""Which repositories the caller of a catalog page may see: those it may pull.

The catalog never decides access itself; it asks registry.auth. Until registry.auth exports a
pull check, everyone may see everything (``None`` = no filter, the fast SQL path).
"""
from __future__ import annotations

from aiohttp import web

from .service import Access


def may_pull_filter(request: web.Request) -> Access:
    """A predicate ``name -> bool`` for this request, or None when every name is visible."""
    return None

"""Who is asking: the request being served, for the access log and for events.

The ops middleware sets it per request; code deeper down (the index's lifecycle hooks, which run
in other threads) captures ``current_request()`` on the event loop first.
"""
from __future__ import annotations

import contextvars
from typing import Any

from aiohttp import web

from registry.state import IDENTITY

_REQUEST: contextvars.ContextVar[web.Request | None] = contextvars.ContextVar("dockyard_request", default=None)
REQUEST_ID = "dockyard_request_id"


def set_request(request: web.Request) -> contextvars.Token:
    return _REQUEST.set(request)


def reset_request(token: contextvars.Token) -> None:
    _REQUEST.reset(token)


def user_name(request: web.Request) -> str | None:
    """The signed-in user (auth's identity), or None."""
    return getattr(request.get(IDENTITY), "name", None)


def current_request() -> dict[str, Any] | None:
    """Distribution's event ``request`` and ``actor`` fields for the request being served."""
    request = _REQUEST.get()
    if request is None:
        return None
    return {
        "request": {"id": request.get(REQUEST_ID, ""), "addr": request.remote or "", "host": request.host,
                    "method": request.method, "useragent": request.headers.get("User-Agent", "")},
        "actor": {"name": user_name(request) or ""},
    }

"""Who is asking: the request's id, client, user and route, for the access log and for events.

The access-log middleware sets it per request; code deeper down (the index's lifecycle hooks,
run in other threads) captures it with ``current_request()`` on the event loop first.
"""
from __future__ import annotations

import contextvars
from typing import Any

_REQUEST: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("dockyard_request", default=None)


def current_request() -> dict[str, Any] | None:
    return _REQUEST.get()


def set_request(info: dict[str, Any]) -> contextvars.Token:
    return _REQUEST.set(info)


def reset_request(token: contextvars.Token) -> None:
    _REQUEST.reset(token)

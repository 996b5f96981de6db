"""Docker's error shape, ``{"message": "..."}``, with current moby's status codes, and the few
request-reading helpers every resource module shares (so a malformed body is a 400 everywhere).

    400  malformed JSON, a bad parameter, an option Dockyard cannot honour
    404  no such container / image / network / volume / exec, or an unknown endpoint
    409  a name already taken, a container in the wrong state for the verb
    500  anything the engine could not do (its own message, one line)

Unknown fields in a body are ignored, as the daemon ignores them: handlers read only the keys
they know.
"""
from __future__ import annotations

import json
import logging

from aiohttp import web

log = logging.getLogger("dockyard.api")
PREPARED = "dockyard.response_prepared"  # set on a request once its response headers are sent


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def conflict(message: str) -> ApiError:
    return ApiError(409, message)


def json_response(doc, status: int = 200) -> web.Response:
    """JSON with docker's bare ``application/json`` type: the docker CLI reads an error's
    message only when the Content-Type is exactly that (aiohttp would add a charset)."""
    return web.Response(body=json.dumps(doc).encode(), status=status,
                        headers={"Content-Type": "application/json"})


def error_response(status: int, message: str) -> web.Response:
    return json_response({"message": message}, status)


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except ApiError as e:
        return error_response(e.status, e.message)
    except web.HTTPException as e:
        if e.status >= 400:
            text = "page not found" if e.status == 404 else (e.text or e.reason)
            return error_response(e.status, text)
        raise
    except (ConnectionResetError, BrokenPipeError):
        # the client left mid-stream (docker cp, a cancelled wait): nothing to answer, no noise
        return web.Response(status=499)
    except Exception as e:  # noqa: BLE001 - the engine keeps serving; the caller gets one line
        log.exception("%s %s failed", request.method, request.path)
        if request.get(PREPARED):
            # the status line is out: no error can follow it, and a client must not wait for
            # the rest of a body that will never come
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)
        return error_response(500, f"{e.__class__.__name__}: {e}" if not str(e) else str(e))


async def read_json(request: web.Request, allow_empty: bool = True) -> dict:
    """The body as a JSON object; an empty body is {} (docker's clients send none for many verbs)."""
    body = await request.read()
    if not body.strip():
        if allow_empty:
            return {}
        raise bad_request("request body is empty: a JSON object was expected")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise bad_request(f"invalid JSON: {e}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise bad_request("invalid JSON: a JSON object was expected")
    return doc


def flag(request: web.Request, name: str, default: bool = False) -> bool:
    """A boolean query parameter as docker reads them: 1/true/True/yes are true, 0/false/'' false."""
    value = request.query.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def integer(request: web.Request, name: str, default: int | None = None) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        return int(float(value))
    except ValueError:
        raise bad_request(f"invalid value for {name}: {value!r}") from None


def filters(request: web.Request) -> dict[str, list[str]]:
    """``filters={"label": ["a=b"]}`` (also the old ``{"label": {"a=b": true}}`` form) as lists."""
    raw = request.query.get("filters")
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise bad_request(f"invalid filters: {e}") from None
    if not isinstance(doc, dict):
        raise bad_request("invalid filters: a JSON object was expected")
    out: dict[str, list[str]] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            out[key] = [k for k, v in value.items() if v]
        elif isinstance(value, list):
            out[key] = [str(v) for v in value]
        else:
            out[key] = [str(value)]
    return out


def label_matches(labels: dict, wanted: list[str]) -> bool:
    """Every ``key`` or ``key=value`` of a label filter holds."""
    labels = labels or {}
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True

"""Turn every failure into the OCI error envelope; never send a traceback.

``error_middleware`` is the outermost middleware (see registry/app.py for the order): domain
errors (ApiError) keep their status; aiohttp's own HTTP errors for unknown routes or methods
get an envelope too. Failures that are not the client's fault and pass (a database restarting,
a lost connection, storage I/O errors) answer 503 + Retry-After, which clients retry, and a full
disk 507; both are logged at WARNING with their cause, one line. A client that went away
mid-body is told so (if it still listens). Anything else is logged with its traceback and
answered with a 500 ``UNKNOWN`` envelope.
"""
from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError

from ..index.unavailable import IndexUnavailable
from ..storage.driver import FULL, StorageFull, StorageUnavailable
from .errors import ApiError, BlobUploadInvalid, NameUnknown, StorageFullError, Unavailable, Unknown, Unsupported

log = logging.getLogger("registry.api")
RETRY_AFTER = "1"  # seconds: a pool reconnects or a store recovers quickly; clients back off further


def error_response(err: ApiError, method: str = "GET") -> web.Response:
    headers = dict(err.headers)
    headers["Docker-Distribution-API-Version"] = "registry/2.0"
    if method == "HEAD" or err.status in (204, 304):
        # HEAD responses carry no body; the status and headers tell the story.
        return web.Response(status=err.status, headers=headers)
    body = json.dumps(err.envelope()).encode()
    return web.Response(status=err.status, body=body, content_type="application/json", headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err, request.method)
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith("/v2"):
            raise
        if exc.status == 404:
            err: ApiError = NameUnknown(message="no such API endpoint or repository")
            err.status = 404
        elif exc.status == 405:
            err = Unsupported(message=f"method {request.method} not allowed here")
        else:
            err = Unknown(message=exc.reason, status=exc.status)
        return error_response(err, request.method)
    except (IndexUnavailable, StorageUnavailable) as exc:
        # The database or the store failed (after any driver retries): retryable, and said so.
        return _unavailable(request, exc)
    except (ConnectionError, ClientPayloadError, asyncio.TimeoutError) as exc:
        # The client went away or stopped sending mid-body; nobody is left to answer.
        log.info("%s %s: client connection lost: %s", request.method, request.path, exc)
        return error_response(BlobUploadInvalid(message="the request body ended early"), request.method)
    except OSError as exc:  # an I/O error outside a driver's wrapping: the same meaning
        return _unavailable(request, exc)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(Unknown(message="internal server error"), request.method)


def _unavailable(request: web.Request, exc: BaseException) -> web.Response:
    cause = exc.__cause__ or exc
    what = "database" if isinstance(exc, IndexUnavailable) else "storage"
    log.warning("%s %s: %s unavailable: %s (%s: %s)", request.method, request.path[:200], what, exc,
                type(cause).__name__, str(cause).splitlines()[0][:200] if str(cause) else "")
    if isinstance(exc, StorageFull) or getattr(exc, "errno", None) in FULL:
        return error_response(StorageFullError(message="the registry's storage is full; nothing was stored, "
                                                       "try again once space is freed"), request.method)
    # The database's own error text stays in the log (it names hosts); a driver's message is its own.
    said = f"storage unavailable: {exc}" if what == "storage" and isinstance(exc, StorageUnavailable) else \
        f"{what} unavailable"
    return error_response(Unavailable(message=f"{said}; retry shortly", headers={"Retry-After": RETRY_AFTER}),
                          request.method)


class QuietBadRequests(logging.Filter):
    """aiohttp answers a malformed request line or header with 400 by itself, then logs the
    parser's traceback at ERROR: one line per bad request is enough (#13.11), at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            what = " ".join(str(exc.message).split())[:200]
            record.msg, record.args = "%s: %s: %s", (record.getMessage()[:100], type(exc).__name__, what)
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info = record.exc_text = None
        return True


def quiet_bad_requests() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, QuietBadRequests) for f in server_log.filters):
        server_log.addFilter(QuietBadRequests())

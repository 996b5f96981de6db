"""Turn every failure into the OCI error envelope; never send a traceback.

``error_middleware`` is the outermost middleware (see registry/app.py for the order): domain
errors (ApiError) keep their status; aiohttp's own HTTP errors for unknown routes or methods
get an envelope too; anything else is logged with its traceback and answered with a 500
``UNKNOWN`` envelope.
"""
from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import ClientPayloadError, web

from ..storage.driver import StorageUnavailable
from .errors import ApiError, BlobUploadInvalid, NameUnknown, Unavailable, Unknown, Unsupported

log = logging.getLogger("registry.api")


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
    except StorageUnavailable as exc:
        # The object store failed after the driver's retries: retryable, and said so.
        log.warning("%s %s: %s", request.method, request.path, exc)
        return error_response(Unavailable(message=f"storage unavailable: {exc}", headers={"Retry-After": "1"}),
                              request.method)
    except (ConnectionError, ClientPayloadError, asyncio.TimeoutError) as exc:
        # The client went away or stopped sending mid-body; nobody is left to answer.
        log.info("%s %s: client connection lost: %s", request.method, request.path, exc)
        return error_response(BlobUploadInvalid(message="the request body ended early"), request.method)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(Unknown(message="internal server error"), request.method)

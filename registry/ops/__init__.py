"""Operations: /metrics, the access log, /healthz and /readyz.

``setup_ops(app, config)`` puts ``ops_middleware`` outermost (it sees the final status, error
envelopes included), so every request is counted, timed and logged once.
"""
from __future__ import annotations

import os
import time

from aiohttp import web

from .. import state
from ..config import RegistryConfig
from ..lifecycle import record_pull
from .access_log import format_line, make_access_logger, write_line
from .context import REQUEST_ID, reset_request, set_request, user_name
from .health import healthz, readyz
from .metrics import Metrics

METRICS = web.AppKey("metrics", Metrics)
UPLOAD_ROUTES = ("v2.upload.patch", "v2.upload.put", "v2.upload.start", "v2.upload.start_noslash")


def _route_name(request: web.Request) -> str:
    try:
        return request.match_info.route.name or "other"
    except Exception:
        return "other"


def _sent(request: web.Request, response: web.StreamResponse) -> int:
    """Body bytes sent (aiohttp's body_length counts the headers too, and not sendfile's bytes)."""
    if request.method == "HEAD":
        return 0
    return response.content_length if response.content_length is not None else response.body_length


def make_ops_middleware(config: RegistryConfig):
    logger = make_access_logger(config.log_format)

    def finished(request: web.Request, route: str, status: int, sent: int, started: float) -> None:
        metrics = request.app.get(METRICS)
        duration = time.perf_counter() - started
        received = request.content.total_bytes if request.body_exists else 0
        if metrics is not None and route != "ops.metrics":
            metrics.observe(route, request.method, status, duration, received, sent)
        write_line(logger, format_line({
            "request_id": request[REQUEST_ID], "client": request.remote, "user": user_name(request),
            "method": request.method, "route": route, "repository": request.match_info.get("name"),
            "status": status, "bytes": sent, "duration_ms": round(duration * 1000, 2),
        }, config.log_format))

    @web.middleware
    async def ops_middleware(request: web.Request, handler):
        started = time.perf_counter()
        request[REQUEST_ID] = os.urandom(8).hex()  # 16 hex digits, as uuid4().hex[:16] was, at a third of its cost
        token = set_request(request)
        metrics = request.app.get(METRICS)
        route = _route_name(request)
        uploading = metrics is not None and route in UPLOAD_ROUTES
        if uploading:
            metrics.uploads_in_flight.inc()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            finished(request, route, exc.status, 0, started)
            raise
        except BaseException:
            finished(request, route, 500, 0, started)
            raise
        finally:
            reset_request(token)
            if uploading:
                metrics.uploads_in_flight.dec()
        if route == "v2.manifest.get" and response.status == 200 and request.method == "GET":
            record_pull(request, response)
        if response.prepared:  # streamed by the handler: everything is sent already
            finished(request, route, response.status, _sent(request, response), started)
            return response
        # Not sent yet (aiohttp sends it after the middlewares): log once it is, with the bytes.
        write_eof = response.write_eof

        async def write_eof_and_log(*args, **kwargs):
            try:
                return await write_eof(*args, **kwargs)
            finally:
                finished(request, route, response.status, _sent(request, response), started)

        response.write_eof = write_eof_and_log  # type: ignore[method-assign]
        return response

    return ops_middleware


async def metrics_view(request: web.Request) -> web.Response:
    body = await request.app[METRICS].render(request.app.get(state.INDEX))
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def setup_ops(app: web.Application, config: RegistryConfig) -> None:
    app[METRICS] = Metrics(app)
    app.middlewares.insert(0, make_ops_middleware(config))
    app.router.add_get("/metrics", metrics_view, name="ops.metrics")
    app.router.add_get("/healthz", healthz, name="ops.healthz")
    app.router.add_get("/readyz", readyz, name="ops.readyz")

"""Registry lifecycle: online GC (review queue + worker), retention, quotas, notifications.

``setup_lifecycle(app, config)`` (called by create_app after the index is opened) applies the
``gc:`` settings to the index's hooks and runs, inside ``serve``, the GC worker (``gc.enabled``),
the retention rules (every ``retention.interval``) and the notification deliverers.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import AsyncIterator, Awaitable, Callable

from aiohttp import web

from .. import state
from ..config import RegistryConfig
from .quotas import QuotaExceeded, Quotas, namespace_of
from .settings import LifecycleSettings, parse_lifecycle
from .worker import GcWorker

log = logging.getLogger("registry.lifecycle")
SETTINGS = web.AppKey("lifecycle_settings", LifecycleSettings)
WORKER = web.AppKey("gc_worker", GcWorker)
TASKS: web.AppKey[list] = web.AppKey("lifecycle_tasks")
QUOTAS = web.AppKey("quotas", Quotas)
EVENTS: web.AppKey = web.AppKey("event_sink")


def record_pull(request: web.Request, response: web.StreamResponse) -> None:
    """A manifest GET that answered 200: a pull event for the endpoints that want one."""
    sink = request.app.get(EVENTS)
    name = request.match_info.get("name")
    if sink is None or not name:
        return
    from registry.ops.context import current_request

    size = response.content_length or 0
    target = {"mediaType": response.content_type, "digest": response.headers.get("Docker-Content-Digest", ""),
              "size": size, "length": size}
    reference = request.match_info.get("reference", "")
    if ":" not in reference:
        target["tag"] = reference
    sink.pulled(name, target, current_request())


async def enforce_quota(request: web.Request, repository: str, digest: str | None,
                        size: int | None | Callable[[], Awaitable[int | None]]) -> None:
    """Called by the API before bytes are committed: DENIED when the namespace would go over.
    ``size`` may be a function, called only when the namespace has a quota."""
    quotas = request.app.get(QUOTAS)
    if quotas is None or size is None or await quotas.limit(namespace_of(repository)) is None:
        return
    if callable(size):
        size = await size()
        if size is None:
            return
    try:
        await quotas.check(repository, digest, size)
    except QuotaExceeded as e:
        from ..api.errors import Denied

        raise Denied(detail={"namespace": e.namespace, "used": e.used, "limit": e.limit, "adding": e.adding},
                     message=str(e)) from None


async def _background(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    idx, storage = app[state.INDEX], app[state.STORAGE]
    idx.lifecycle.gc = settings.gc
    app[QUOTAS] = Quotas(idx)
    tasks: list[asyncio.Task] = []
    worker = app[WORKER] = GcWorker(idx, storage)
    if settings.gc.enabled:
        tasks.append(asyncio.create_task(worker.run(), name="gc-worker"))
    if settings.notifications.endpoints:
        from .notifications import Deliverer, EventSink, flush_loop

        cfg = app[state.CONFIG]
        sink = app[EVENTS] = EventSink(settings.notifications, cfg.listen, f"http://{cfg.listen}")
        sink.loop = asyncio.get_running_loop()
        idx.lifecycle.events = sink
        tasks.append(asyncio.create_task(flush_loop(sink, idx), name="events-flush"))
        for endpoint in settings.notifications.endpoints:
            tasks.append(asyncio.create_task(Deliverer(idx, endpoint, sink).run(), name=f"events-{endpoint.name}"))
    if settings.retention.rules:
        tasks.append(asyncio.create_task(_retention_loop(app), name="retention"))
    for starter in app[TASKS]:
        tasks.extend(await starter(app))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _retention_loop(app: web.Application) -> None:
    from .retention import apply_retention

    settings = app[SETTINGS].retention
    while True:
        try:
            report = await apply_retention(app[state.INDEX], settings)
            if report.tags:
                log.info("retention: deleted %d tag(s), %d manifest(s) queued for GC, %d bytes to free",
                         len(report.tags), len(report.untagged), report.freed_bytes)
        except Exception as e:
            log.warning("retention failed (%s: %s); next run in %.0f s", e.__class__.__name__, e, settings.interval)
        await asyncio.sleep(settings.interval)


def setup_lifecycle(app: web.Application, config: RegistryConfig) -> None:
    app[SETTINGS] = parse_lifecycle(config)
    app[TASKS] = []
    app.cleanup_ctx.append(_background)

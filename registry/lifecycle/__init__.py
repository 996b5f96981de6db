"""Registry lifecycle: online GC (review queue + worker), retention, quotas, notifications.

``setup_lifecycle(app, config)`` (called by create_app after the index is opened) applies the
``gc:`` settings to the index's hooks and runs, inside ``serve``, the GC worker (``gc.enabled``),
the retention rules (every ``retention.interval``) and the notification deliverers.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import AsyncIterator

from aiohttp import web

from .. import state
from ..config import RegistryConfig
from .settings import LifecycleSettings, parse_lifecycle
from .worker import GcWorker

log = logging.getLogger("registry.lifecycle")
SETTINGS = web.AppKey("lifecycle_settings", LifecycleSettings)
WORKER = web.AppKey("gc_worker", GcWorker)
TASKS: web.AppKey[list] = web.AppKey("lifecycle_tasks")


async def _background(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    idx, storage = app[state.INDEX], app[state.STORAGE]
    idx.lifecycle.gc = settings.gc
    tasks: list[asyncio.Task] = []
    worker = app[WORKER] = GcWorker(idx, storage)
    if settings.gc.enabled:
        tasks.append(asyncio.create_task(worker.run(), name="gc-worker"))
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


def setup_lifecycle(app: web.Application, config: RegistryConfig) -> None:
    app[SETTINGS] = parse_lifecycle(config)
    app[TASKS] = []
    app.cleanup_ctx.append(_background)

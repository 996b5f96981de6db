"""create_app(config) -> web.Application: wiring only.

Order of middlewares (outermost first), kept in ``app.middlewares`` which stays a mutable list
until the app starts:

1. ``error_middleware`` — turns every failure below it into the OCI error envelope;
2. whatever ``setup_auth`` appends (``app.middlewares.append(auth_middleware)``): it runs inside
   the envelope, after routing, so it sees ``request.match_info.route.name`` (see
   registry.api.routes.ACTIONS) and ``request.match_info.get("name")``, and may raise
   ``registry.api.errors.Unauthorized(headers={"WWW-Authenticate": ...})`` or ``Denied``.

Shared state is in typed keys (registry.state): CONFIG, INDEX, STORAGE, UPLOADS,
MANIFEST_CACHE. The index and storage are opened and closed in ``cleanup_ctx``.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import AsyncIterator

from aiohttp import web

from . import state
from .api.common import API_VERSION_HEADER
from .storage.manifest_cache import ManifestCache
from .api.middleware import error_middleware, quiet_bad_requests
from .api.routes import add_routes
from .auth import setup_auth
from .config import RegistryConfig
from .gc import collect
from .index import Index
from .lifecycle import setup_lifecycle
from .ops import setup_ops
from .proxy import setup_proxy
from .storage import open_driver
from .storage.uploads import UploadSessions
from .web import setup_catalog

log = logging.getLogger("registry")


async def _add_api_version(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/v2"):
        response.headers.setdefault(*API_VERSION_HEADER)


async def expire_uploads(app: web.Application) -> int:
    """Cancel upload sessions idle longer than upload_expiry, and orphaned staging areas.

    A session is idle when neither its index row nor its staged bytes changed since the cutoff
    (PATCH appends only touch the staging file, to keep the index out of the data path).
    """
    cfg, idx, sessions = app[state.CONFIG], app[state.INDEX], app[state.UPLOADS]
    cutoff = time.time() - cfg.upload_expiry
    staged = {upload_id: mtime async for upload_id, mtime in app[state.STORAGE].iter_uploads()}
    expired: list[str] = []
    for upload_id in await idx.expired_uploads(cutoff):
        if staged.get(upload_id, 0.0) >= cutoff:
            await idx.touch_upload(upload_id)  # still being written to
            continue
        await idx.delete_upload(upload_id)
        await sessions.cancel(upload_id)
        expired.append(upload_id)
    known = await idx.all_upload_ids()
    for upload_id, mtime in staged.items():
        if upload_id not in known and mtime < cutoff:
            await sessions.cancel(upload_id)
            expired.append(upload_id)
    if expired:
        log.info("expired %d upload session(s)", len(expired))
    return len(expired)


async def _expiry_loop(app: web.Application) -> None:
    interval = max(1.0, min(600.0, app[state.CONFIG].upload_expiry / 10))
    while True:
        try:
            await expire_uploads(app)
        except Exception:
            log.exception("upload expiry failed")
        await asyncio.sleep(interval)


async def _gc_loop(app: web.Application) -> None:
    cfg = app[state.CONFIG]
    while True:
        await asyncio.sleep(cfg.gc_interval)
        try:
            await collect(app[state.INDEX], app[state.STORAGE], cfg.gc_grace)
        except Exception:
            log.exception("garbage collection failed")


async def _resources(app: web.Application) -> AsyncIterator[None]:
    cfg = app[state.CONFIG]
    driver = open_driver(cfg.data_dir, cfg.storage)
    await driver.open()
    idx = Index(cfg.database_url)
    try:
        if cfg.auto_migrate:
            await idx.migrate(in_child=app.get(MIGRATE_IN_CHILD, False))
        app[state.STORAGE] = driver
        app[state.INDEX] = idx
        app[state.UPLOADS] = UploadSessions(driver)
        tasks = [asyncio.create_task(_expiry_loop(app))]
        if cfg.gc_interval > 0:
            tasks.append(asyncio.create_task(_gc_loop(app)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        await idx.close()
        await driver.close()


# ``serve`` migrates a schema that is behind in a child process: the server never imports Alembic.
MIGRATE_IN_CHILD = web.AppKey("migrate_in_child", bool)


def create_app(config: RegistryConfig, migrate_in_child: bool = False) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=config.max_manifest_size + 1024)
    app[state.CONFIG] = config
    app[MIGRATE_IN_CHILD] = migrate_in_child
    quiet_bad_requests()
    app[state.MANIFEST_CACHE] = ManifestCache()
    app.cleanup_ctx.append(_resources)
    setup_lifecycle(app, config)  # after _resources: its workers use the index and storage
    setup_ops(app, config)  # /metrics, /healthz, /readyz; its middleware goes outermost
    app.on_response_prepare.append(_add_api_version)
    add_routes(app)
    setup_auth(app, config)
    setup_proxy(app, config)  # after auth: access rules apply to cached names too
    setup_catalog(app, config)
    return app

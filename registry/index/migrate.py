"""Alembic, configured in code so it works from an installed package (no alembic.ini needed).

The scripts live in the top-level ``migrations`` package. Upgrades go to "heads": other parts of
the registry (auth, catalog) may add their own revision branches on top of the first one.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.util
import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATION_LOCK_KEY = 0x646F636B  # 'dock'


def alembic_config(url: str | None = None) -> Config:
    spec = importlib.util.find_spec("migrations")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the migrations package is not installed")
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(list(spec.submodule_search_locations)[0])))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "heads") -> None:
    """Bring the schema to ``revision``; safe when several processes or tasks start together."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))

    def run(sync_conn) -> None:
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    async with _migration_lock(engine):
        async with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                # Replicas starting together: one migrates, the others wait and find it done.
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            await conn.run_sync(run)


@contextlib.asynccontextmanager
async def _migration_lock(engine: AsyncEngine):
    """SQLite has no advisory locks: an flock on a file next to the database (waited for in a
    worker thread, so the event loop keeps running) serialises migrations across processes
    and tasks alike."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    loop = asyncio.get_running_loop()
    fd = os.open(f"{database}.migrate-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await loop.run_in_executor(None, fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


async def current(engine: AsyncEngine) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    def heads(sync_conn) -> set[str]:
        return set(MigrationContext.configure(sync_conn).get_current_heads())

    async with engine.connect() as conn:
        return await conn.run_sync(heads)

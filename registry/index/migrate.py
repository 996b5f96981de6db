"""Alembic, configured in code so it works from an installed package (no alembic.ini needed).

The scripts live in the top-level ``migrations`` package. Upgrades go to "heads": other parts of
the registry (auth, catalog) may add their own revision branches on top of the first one.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine


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
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))

    def run(sync_conn) -> None:
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def current(engine: AsyncEngine) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    def heads(sync_conn) -> set[str]:
        return set(MigrationContext.configure(sync_conn).get_current_heads())

    async with engine.connect() as conn:
        return await conn.run_sync(heads)

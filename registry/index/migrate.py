"""Alembic, configured in code so it works from an installed package (no alembic.ini needed).

The scripts live in the top-level ``migrations`` package. Upgrades go to "heads": other parts of
the registry (auth, catalog) may add their own revision branches on top of the first one.

Alembic (with Mako and Pygments, ~13 MiB resident for the life of the server) is imported only
when the schema is behind: ``upgrade`` first compares alembic_version, read with plain SQL, with
the head revision ids written in the scripts (read as text, not imported). Anything it cannot read
-> run Alembic. ``serve`` goes one step further (``upgrade_in_child``): a schema that is behind
(a fresh data directory) is upgraded by a short-lived child process, so the server never holds
Alembic at all.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Connection
    from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATION_LOCK_KEY = 0x646F636B  # 'dock'


def _script_location() -> Path:
    spec = importlib.util.find_spec("migrations")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the migrations package is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_script_location()))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]\s*$", re.M)
_DOWN_REVISION = re.compile(r"^down_revision\s*(?::[^=]*)?=(.*)$", re.M)


def script_heads() -> set[str] | None:
    """Head revision ids of the scripts, read as text; None when a script is not in the simple
    ``revision = "x"`` / ``down_revision = "y" | ("y", "z") | None`` form (then Alembic decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((_script_location() / "versions").glob("*.py")):
        source = path.read_text()
        rev, down = _REVISION.findall(source), _DOWN_REVISION.findall(source)
        if len(rev) != 1 or len(down) != 1:
            return None
        value = down[0].split("#")[0].strip()
        names = re.findall(r"['\"]([^'\"]+)['\"]", value)
        if not names and value != "None":
            return None
        revisions.add(rev[0])
        parents.update(names)
    return (revisions - parents) or None


_VERSIONS = "SELECT version_num FROM alembic_version"


async def is_current(engine: AsyncEngine) -> bool:
    """True when alembic_version holds exactly the scripts' heads (no Alembic import)."""
    heads = script_heads()
    if heads is None:
        return False
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text(_VERSIONS))).scalars().all()
    except Exception:  # no table yet (fresh database), or anything unexpected: let Alembic look
        return False
    return set(rows) == heads


def is_current_sync(conn: Connection) -> bool:
    """``is_current`` on a synchronous connection (SQLite's reader engine: no async engine)."""
    heads = script_heads()
    if heads is None:
        return False
    try:
        rows = conn.execute(text(_VERSIONS)).scalars().all()
    except Exception:  # no table yet (fresh database), or anything unexpected: let Alembic look
        return False
    return set(rows) == heads


async def upgrade(engine: AsyncEngine, revision: str = "heads") -> None:
    """Bring the schema to ``revision``; safe when several processes or tasks start together."""
    if revision == "heads" and await is_current(engine):
        return
    from alembic import command

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


async def upgrade_in_child(engine: AsyncEngine) -> None:
    """``upgrade`` run by ``python -m registry.index.migrate`` (the URL on its stdin, never in
    argv where ps shows it) when the schema is behind; nothing when it is current."""
    if await is_current(engine):
        return
    await upgrade_url_in_child(engine.url.render_as_string(hide_password=False))


async def upgrade_url_in_child(url: str) -> None:
    """The child of ``upgrade_in_child``, without its check (the caller found the schema behind)."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "registry.index.migrate",
                                                stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = await proc.communicate(url.encode())
    if proc.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"schema migration failed: {lines[-1] if lines else f'exit {proc.returncode}'}")


def _child_main() -> int:
    async def run(url: str) -> None:
        from .database import create_engine

        engine = create_engine(url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(run(sys.stdin.read().strip()))
    return 0


if __name__ == "__main__":
    raise SystemExit(_child_main())

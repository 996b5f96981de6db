"""One garbage collector at a time across every replica that shares the index.

PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) held on one pooled
connection for the whole collection; if the collecting process dies, PostgreSQL drops the
connection and with it the lock, so a kill -9 never leaves GC blocked. SQLite (one machine): a
non-blocking flock on a file beside the database. A second collector does not wait: it skips
this round (the next interval or the next ``gc`` run collects).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from typing import TYPE_CHECKING, AsyncIterator

from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

GC_LOCK_KEY = 0x646F636B6763  # 'dockgc'


@contextlib.asynccontextmanager
async def gc_lock(engine: AsyncEngine) -> AsyncIterator[bool]:
    """Yields True when this process now holds the GC lock, False when another one does."""
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            held = bool((await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": GC_LOCK_KEY})).scalar())
            await conn.commit()
            try:
                yield held
            finally:
                if held:
                    await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": GC_LOCK_KEY})
                    await conn.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield True
        return
    fd = os.open(f"{database}.gc-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the flock

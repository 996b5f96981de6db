"""The index's connection to its database: engine set-up per dialect, transactions, upserts.

SQLite: WAL (readers never wait for the writer), a busy timeout (another process such as
`gc` may hold the write lock for a moment), foreign keys on, and one writer at a time inside
this process (an asyncio lock), because SQLite's single write lock would otherwise turn
concurrent pushes into "database is locked" errors.
PostgreSQL: a connection pool; concurrent writers rely on ON CONFLICT upserts, with a retry for
the rare deadlock or serialization failure.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRYABLE = ("deadlock detected", "could not serialize", "database is locked", "40P01", "40001")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Reads are not in a transaction (pysqlite begins one only for writes), and writes end
        # in an explicit commit or rollback: the pool need not roll back on every return.
        engine = create_async_engine(url, connect_args={"timeout": 30}, pool_reset_on_return=None)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.dialect = self.engine.dialect.name
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None

    async def close(self) -> None:
        await self.engine.dispose()

    def insert(self, table: Any) -> Any:
        """An INSERT that supports ``on_conflict_do_nothing/do_update`` on this dialect."""
        return (sqlite.insert if self.dialect == "sqlite" else postgresql.insert)(table)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def write(self, fn: Callable[[AsyncConnection], Awaitable[T]], attempts: int = 5) -> T:
        """Run ``fn(conn)`` in one transaction, retrying transient lock conflicts."""
        for attempt in range(attempts):
            try:
                if self._write_lock is None:
                    async with self.engine.begin() as conn:
                        return await fn(conn)
                async with self._write_lock:
                    async with self.engine.begin() as conn:
                        return await fn(conn)
            except DBAPIError as e:
                if attempt == attempts - 1 or not any(s in str(e) for s in RETRYABLE):
                    raise
                log.info("index write conflict, retrying: %s", str(e).splitlines()[0])
                await asyncio.sleep(0.01 * (2**attempt) * (1 + random.random()))
        raise AssertionError("unreachable")

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

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine, Executable, Row, event
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

log = logging.getLogger(__name__)
T = TypeVar("T")
READERS = 4
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


def _sync_sqlite_reader(url: str) -> Engine | None:
    """A plain (thread-pool) engine for the hot read queries on a SQLite file.

    aiosqlite hops to its own thread for every cursor call (five per query); one hop to a
    worker that runs the whole query is several times cheaper, and SQLite in WAL mode lets any
    number of readers run beside the writer.
    """
    parsed = make_url(url)
    if not parsed.database or parsed.database == ":memory:":
        return None
    engine = sa_create_engine(
        parsed.set(drivername="sqlite"),
        connect_args={"timeout": 30, "check_same_thread": False},
        pool_reset_on_return=None,
        pool_size=READERS,
        max_overflow=0,
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.dialect = self.engine.dialect.name
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None
        self._reader = _sync_sqlite_reader(url) if self.dialect == "sqlite" else None
        self._reader_pool = ThreadPoolExecutor(READERS, thread_name_prefix="index-read") if self._reader else None

    async def close(self) -> None:
        await self.engine.dispose()
        if self._reader is not None:
            self._reader.dispose()
            self._reader_pool.shutdown(wait=False)

    def _sync_first(self, stmt: Executable, params: dict[str, Any]) -> Row | None:
        with self._reader.connect() as conn:
            return conn.execute(stmt, params).first()

    async def first(self, stmt: Executable, params: dict[str, Any]) -> Row | None:
        """The first row of a read-only query: the fast path for per-request lookups."""
        if self._reader is not None:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._reader_pool, self._sync_first, stmt, params)
        async with self.engine.connect() as conn:
            return (await conn.execute(stmt, params)).first()

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

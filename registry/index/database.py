"""The index's connection to its database: engines per dialect, transactions, upserts.

Every query is a plain function of a synchronous SQLAlchemy ``Connection`` (``def q(conn)``),
run by ``Database.read(q)`` or ``Database.write(q)`` (one transaction):

- SQLite: the whole function runs in a worker thread on the stdlib driver — one thread hop
  per query instead of one per cursor call (aiosqlite), which is what makes the per-request
  lookups cheap. Readers run in a small pool (WAL: they never wait for the writer); writes run
  in a single writer thread, so writers inside this process queue instead of fighting for
  SQLite's one write lock, and the writes queued together share one transaction and one
  COMMIT, each in its own savepoint (group commit, ``group_commit.py``). A busy timeout covers
  other processes (``gc``, a second replica).
- PostgreSQL: the same function runs through asyncpg with ``AsyncConnection.run_sync``; a pool
  of connections; concurrent writers rely on ON CONFLICT upserts.
Both retry a transaction that hit a transient conflict (deadlock, serialization, locked).
A database that cannot be reached or answer (a restart, a lost connection, a full disk, a
pool timeout) raises ``IndexUnavailable`` with the cause: the API answers 503 + Retry-After
(clients retry those), never a client error (#13.7).

``engine`` (an AsyncEngine on both dialects) is what Alembic migrations run on. On SQLite no
query uses it, so it is created when first asked for (a migration, the GC lock's path): a server
whose schema is current never imports ``sqlalchemy.ext.asyncio`` (and with it the ORM's session
machinery, ~6 MiB resident) nor the aiosqlite dialect.
"""
from __future__ import annotations

import asyncio
import logging
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from .group_commit import BeforeFailed, Chain, GroupCommitter, Outcome, WriterConnection, run_after, run_batch
from .point_reads import PointReads
from .unavailable import unavailable_as

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)
T = TypeVar("T")
READERS = 4
BEFORE_THREADS = 6  # a write's chained storage step (an fsync-ed put): as many as the default executor's
RETRYABLE = ("deadlock detected", "could not serialize", "database is locked", "40P01", "40001")
Query = Callable[[Connection], T]


def _retryable(e: BaseException) -> bool:
    """A transient conflict: running the transaction again can succeed."""
    return isinstance(e, DBAPIError) and any(s in str(e) for s in RETRYABLE)


async def _drop_if_broken(conn: Any, e: DBAPIError) -> bool:
    """True if ``e`` says the connection itself is unusable, after making sure the pool will
    not hand it out again: closed by the server (SQLAlchemy invalidated it already), or an
    asyncpg protocol left mid-operation ("cannot switch to state N; another operation is in
    progress": the next statement on it would fail the same way)."""
    if e.connection_invalidated:
        return True
    if "another operation" in str(e) and "in progress" in str(e):
        await conn.invalidate()
        return True
    return False


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # FULL: in WAL mode every COMMIT fsyncs the WAL, so what a 201 acknowledged survives a power
    # cut, and a review row queued before bytes are written is on disk before they are (the GC
    # protocol's order). NORMAL syncs only at checkpoints: the last commits could vanish with
    # their bytes kept. Group commit shares the one fsync among the writes of a batch.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _check_sqlite_url(url: str) -> None:
    parsed = make_url(url)
    if not parsed.database or parsed.database == ":memory:":
        raise ValueError("database_url: SQLite needs a file (sqlite+aiosqlite:///PATH)")
    Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str) -> AsyncEngine:
    from sqlalchemy.ext.asyncio import create_async_engine

    if make_url(url).get_backend_name() == "sqlite":
        _check_sqlite_url(url)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # No pre-ping: on asyncpg it is three round trips (BEGIN, ";", ROLLBACK) per checkout, more
    # than most queries cost; a connection that died in the pool fails its first statement
    # instead, and ``Database.read`` retries a read once on a fresh one (writes surface as
    # IndexUnavailable, 503 + Retry-After). LIFO keeps the few busy connections warm (asyncpg's
    # prepared-statement cache is per connection).
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_use_lifo=True)


def _sqlite_sync_engine(url: str, pool_size: int) -> Engine:
    engine = sa_create_engine(
        make_url(url).set(drivername="sqlite"),
        connect_args={"timeout": 30, "check_same_thread": False},
        # Reads are not in a transaction (the driver begins one only for writes), and writes
        # end in an explicit commit or rollback: no reset needed when a connection returns.
        pool_reset_on_return=None,
        pool_size=pool_size,
        max_overflow=0,
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        self._engine: AsyncEngine | None = None
        if self.dialect == "sqlite":
            _check_sqlite_url(url)  # the async engine comes when asked for (``engine``)
        else:
            self._engine = create_engine(url)
        self._reader: Engine | None = None
        self._writer: Engine | None = None
        self._before_pool: ThreadPoolExecutor | None = None
        if self.dialect == "sqlite":
            self._reader = _sqlite_sync_engine(url, READERS)
            self._writer = _sqlite_sync_engine(url, 1)
            self._read_threads = ThreadPoolExecutor(READERS, thread_name_prefix="index-read")
            self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="index-write")
            # Looked up per batch (not bound here) so that tests can make the writer fail.
            self._committer = GroupCommitter(self._write_thread, lambda fns: self._sync_write(fns))
            self._write_conn = WriterConnection(self._writer)  # used by the writer thread only
        self.point = PointReads(self)  # ``await db.point.row(stmt, params)``: the hot one-row reads

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = create_engine(self.url)
        return self._engine

    @engine.setter
    def engine(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @property
    def has_engine(self) -> bool:
        """True once the async engine exists (always on PostgreSQL)."""
        return self._engine is not None

    def pools(self) -> list[Any]:
        """The connection pools queries use: the async engine's on PostgreSQL, the reader and
        writer engines' on SQLite."""
        if self._reader is not None and self._writer is not None:
            return [self._reader.pool, self._writer.pool]
        return [self.engine.sync_engine.pool]

    async def close(self) -> None:
        await self.point.close()
        if self._before_pool is not None:
            self._before_pool.shutdown(wait=True)
        if self._engine is not None:
            await self._engine.dispose()
        if self._reader is not None and self._writer is not None:
            self._read_threads.shutdown(wait=True)
            self._write_thread.shutdown(wait=True)
            self._write_conn.close()  # the writer thread is done with it
            self._reader.dispose()
            self._writer.dispose()

    def insert(self, table: Any) -> Any:
        """An INSERT that supports ``on_conflict_do_nothing/do_update`` on this dialect."""
        if self.dialect == "sqlite":
            return sqlite.insert(table)
        from sqlalchemy.dialects import postgresql  # ~2 MiB resident; not imported on SQLite

        return postgresql.insert(table)

    # -- running queries ----------------------------------------------------------------------
    @staticmethod
    def _sync_read(engine: Engine, fn: Query[T]) -> T:
        with engine.connect() as conn:
            return fn(conn)

    def _sync_write(self, fns: list[Query[Any]]) -> list[Outcome]:
        assert self._writer is not None
        return run_batch(self._write_conn, fns, _retryable)

    async def read(self, fn: Query[T]) -> T:
        """Run a read-only query function."""
        with unavailable_as("read"):
            if self._reader is not None:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._read_threads, self._sync_read, self._reader, fn)
            for attempt in range(2):
                async with self.engine.connect() as conn:
                    # Autocommit: no BEGIN / ROLLBACK round trips around a read (set on the
                    # client side only). Same answers: at READ COMMITTED every statement takes
                    # its own snapshot inside a transaction too, and reads take no locks.
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                    try:
                        return await conn.run_sync(fn)
                    except DBAPIError as e:  # a pooled connection the server closed: once more
                        if not await _drop_if_broken(conn, e) or attempt:
                            raise
            raise AssertionError("unreachable")

    async def write(self, fn: Query[T], attempts: int = 5, after: Callable[[], None] | None = None,
                    before: Callable[[], Any] | None = None, then: Callable[[Any], Chain | None] | None = None) -> T:
        """Run ``fn(conn)`` in one transaction, retrying transient lock conflicts. ``after``: a
        clean-up to run (off the event loop) once the transaction is committed, before this
        returns; on SQLite in the writer thread itself (group_commit.GroupCommitter.submit).
        ``before``: blocking work (a storage write) done off the event loop before ``fn``'s
        first attempt, whose errors are raised as they are and stop the write; on SQLite its
        thread queues ``fn`` to the writer itself (one event-loop wake-up less). ``then``: given
        ``fn``'s value once committed, None (that value is the answer) or a ``Chain`` (a blocking
        step, then a write, whose value is the answer instead); on SQLite decided in the writer
        thread and run without the event loop. A retried conflict runs ``fn`` (and its chain)
        again from the start: nothing of a rolled-back batch was kept."""
        try:
            with unavailable_as("write"):
                if then is not None:
                    return await self._write_then(fn, attempts, after, then)
                return await self._write(fn, attempts, after, before)
        except BeforeFailed as e:
            raise e.error from None

    async def _write_then(self, fn: Query[Any], attempts: int, after: Callable[[], None] | None,
                          then: Callable[[Any], Chain | None]) -> Any:
        if self._writer is not None:
            return await self._write(fn, attempts, after, then=then)
        value = await self._write(fn, attempts, after)
        chain = then(value)
        if chain is None:
            return value
        return await self._write(chain.fn, attempts, chain.after, chain.before)

    def _before_threads(self) -> ThreadPoolExecutor:
        if self._before_pool is None:  # threads start when first used, as the default executor's
            self._before_pool = ThreadPoolExecutor(BEFORE_THREADS, thread_name_prefix="index-before")
        return self._before_pool

    async def _write(self, fn: Query[T], attempts: int, after: Callable[[], None] | None = None,
                     before: Callable[[], Any] | None = None, then: Callable[[Any], Chain | None] | None = None) -> T:
        if before is not None and self._writer is None:
            try:
                await asyncio.get_running_loop().run_in_executor(self._before_threads(), before)
            except BaseException as e:
                raise BeforeFailed(e) from None
            before = None
        for attempt in range(attempts):
            try:
                if self._writer is not None:
                    chained, before = before, None  # done by the first attempt, whatever it does next
                    return await self._committer.submit(
                        fn, after, chained, self._before_threads() if chained is not None or then else None, then)
                async with self.engine.begin() as conn:
                    try:
                        value = await conn.run_sync(fn)
                    except DBAPIError as e:
                        await _drop_if_broken(conn, e)
                        raise
                if after is not None:
                    await asyncio.get_running_loop().run_in_executor(None, run_after, after)
                return value
            except DBAPIError as e:
                if attempt == attempts - 1 or not _retryable(e):
                    raise
                log.info("index write conflict, retrying: %s", str(e).splitlines()[0])
                await asyncio.sleep(0.01 * (2**attempt) * (1 + random.random()))
        raise AssertionError("unreachable")

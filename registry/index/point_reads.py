"""One-row reads on the hot path (tag -> manifest, blob size), straight on asyncpg on PostgreSQL.

A manifest GET by tag on a replica was ~1.1 ms of CPU, and a third of it was SQLAlchemy's
async machinery around one indexed SELECT: the pool checkout, setting AUTOCOMMIT on the
connection, the greenlet hop of ``run_sync``, the cursor adaptation and the result wrapping
(py-spy, ``python -m bench.s3_replicas --profile``). Here the same statement, compiled once by
SQLAlchemy for asyncpg (so its text cannot drift from the query builders), runs with
``fetchrow`` on a small asyncpg pool of its own: no transaction (each statement is its own
snapshot, as on the autocommit path), asyncpg's prepared-statement cache per connection.
Nothing is cached between requests: every call asks PostgreSQL, so a tag moved by another
replica is seen at once.

On SQLite the statement runs through ``Database.read`` and ``fast.execute`` (the reader
threads and the raw sqlite3 path are the cheap path there).
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from . import fast
from .unavailable import is_unavailable, unavailable_as

if TYPE_CHECKING:
    from .database import Database

POOL_MAX = 10  # like the engine's pool_size: reads are short, a few connections serve many
CLOSE_GRACE = 2.0  # seconds
# A read waits this long for a free connection, then answers 503 + Retry-After (the engine's
# pool does the same with its pool_timeout). asyncpg's own acquire waits forever, and before
# 0.32 a holder whose connection the server killed mid-query was never returned to the pool:
# under repeated pg_terminate_backend every manifest GET by tag hung (tests/registry/api/
# test_faults.py). The bound keeps any such leak a slow 503, never a hung request.
ACQUIRE_TIMEOUT = 10.0  # seconds
# One indexed SELECT answers in well under a millisecond; a server that accepted the statement
# and then hung (a stopped process, a lost network path without RST) would otherwise hold the
# request until TCP gives up, minutes later.
STATEMENT_TIMEOUT = 10.0  # seconds


class PoolExhausted(ConnectionError):
    """Every connection of the point-read pool stayed busy for ACQUIRE_TIMEOUT (an OSError, so
    ``is_unavailable`` maps it to IndexUnavailable: 503 + Retry-After)."""


class StatementTimedOut(ConnectionError):
    """PostgreSQL did not answer a point read within STATEMENT_TIMEOUT (503 + Retry-After)."""


class PointReads:
    def __init__(self, db: "Database") -> None:
        self.db = db
        # PostgreSQL only (its async engine exists from the start); on SQLite nothing here is used.
        self._dialect = db.engine.dialect if db.has_engine else None
        self._url = db.engine.url if db.has_engine else None
        self._pool: Any = None
        self._opening: asyncio.Lock | None = None
        self._compiled: dict[Any, tuple[str, list[str]]] = {}

    async def row(self, stmt: Any, params: dict[str, Any]) -> tuple | None:
        """The first row of ``stmt`` (a select of plain columns: no JSON decoding here) or None."""
        if self.db.dialect != "postgresql":  # SQLite: its raw prebuilt path (registry/index/fast.py)
            return await self.db.read(lambda conn: fast.execute(conn, stmt, params).first())
        sql, names = self._compile(stmt)
        args = [params[n] for n in names]
        with unavailable_as("read"):
            for attempt in range(2):
                try:
                    found = await self._fetchrow(sql, args)
                except Exception as e:
                    # A pooled connection the server closed (a restart): asyncpg drops it; once more.
                    if attempt or not is_unavailable(e) or isinstance(e, (PoolExhausted, StatementTimedOut)):
                        raise
                    continue
                return tuple(found) if found is not None else None
        raise AssertionError("unreachable")

    async def _fetchrow(self, sql: str, args: list[Any]) -> Any:
        pool = self._pool or await self._open()
        try:
            conn = await pool.acquire(timeout=ACQUIRE_TIMEOUT)
        except asyncio.TimeoutError as e:
            raise PoolExhausted(f"no free connection in {ACQUIRE_TIMEOUT:g} s") from e
        try:
            return await conn.fetchrow(sql, *args, timeout=STATEMENT_TIMEOUT)
        except asyncio.TimeoutError as e:
            # asyncpg asks the server to cancel the statement, and release() would wait with no
            # bound for that cancellation to be answered (MagicStack/asyncpg #431) -- from the
            # very server that did not answer. Drop the connection; the pool opens a new one.
            conn.terminate()
            raise StatementTimedOut(f"no answer in {STATEMENT_TIMEOUT:g} s") from e
        finally:
            await pool.release(conn)

    def _compile(self, stmt: Any) -> tuple[str, list[str]]:
        found = self._compiled.get(stmt)  # keyed by the (module-level) statement object itself
        if found is None:
            compiled = stmt.compile(dialect=self._dialect)
            found = self._compiled[stmt] = (compiled.string, list(compiled.positiontup or ()))
        return found

    async def _open(self) -> Any:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                import asyncpg

                _args, kwargs = self._dialect.create_connect_args(self._url)
                kwargs.pop("prepared_statement_cache_size", None)
                self._pool = await asyncpg.create_pool(min_size=1, max_size=POOL_MAX, **kwargs)
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                # Graceful close waits for every connection to be released and to say goodbye;
                # after the server killed some (a restart, pg_terminate_backend) it can wait
                # forever. Reads hold nothing worth waiting for: then the sockets are just closed.
                await asyncio.wait_for(pool.close(), CLOSE_GRACE)
            except (asyncio.TimeoutError, OSError):
                pool.terminate()

"""A query cancelled mid-flight on PostgreSQL must not leave its connection half-used in the pool.

What the end of full test runs logged: ``InternalClientError: cannot switch to state 11;
another operation (2) is in progress`` from a ``Ranking._refresh()`` task. Shutting the app down
cancels the catalog's background work (the ranking refresh, the pull-time flush) and aiohttp
cancels requests still running; a cancelled asyncpg statement leaves the connection waiting for
the server's answer to the cancel, and returned to the pool like that, the next query on it (a
ranking refresh, with the LIFO pool the very next checkout) fails. These tests cancel real
queries on a real server and then use the pool again.
"""
from __future__ import annotations

import asyncio
import gc
import logging

import pytest
from sqlalchemy import text

from registry import state
from registry.app import create_app
from registry.config import RegistryConfig
from registry.index.database import Database
from registry.web import SERVICE

pytestmark = pytest.mark.postgres


async def _cancel_mid_query(db: Database, write: bool) -> None:
    run = db.write if write else db.read
    task = asyncio.create_task(run(lambda conn: conn.execute(text("SELECT pg_sleep(2)")).all()))
    await asyncio.sleep(0.3)  # the statement is running on the server
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("write", [False, True], ids=["read", "write"])
async def test_the_next_queries_after_a_cancelled_one_succeed(postgres_url, write):
    db = Database(postgres_url)
    try:
        await _cancel_mid_query(db, write)
        # several in turn and side by side: whichever connection the pool hands out works
        for _ in range(3):
            assert await db.read(lambda conn: conn.execute(text("SELECT 1")).scalar_one()) == 1
        assert await asyncio.gather(*(db.read(lambda conn: conn.execute(text("SELECT 2")).scalar_one())
                                      for _ in range(4))) == [2] * 4
        assert await db.write(lambda conn: conn.execute(text("SELECT 3")).scalar_one()) == 3
    finally:
        await db.close()


async def test_app_shutdown_during_a_ranking_refresh_leaves_no_failed_task(postgres_url, tmp_path, aiohttp_client,
                                                                        caplog, monkeypatch):
    """The app stops while a (slow) ranking refresh runs: the refresh is cancelled, the pull
    times noted before are still written at shutdown, and nothing logs a task that failed."""
    config = RegistryConfig(data_dir=str(tmp_path / "data"), database_url=postgres_url).finish()
    app = create_app(config)
    client = await aiohttp_client(app)
    service = app[SERVICE]
    await service.ranking.get()
    real = service.queries.repository_ranking

    async def slow_ranking():
        await service.queries.db.read(lambda conn: conn.execute(text("SELECT pg_sleep(2)")).all())
        return await real()

    monkeypatch.setattr(service.queries, "repository_ranking", slow_ranking)
    service.ranking.mark_dirty()
    service.ranking.start()
    await asyncio.sleep(0.3)  # the refresh is inside its query
    index = app[state.INDEX]
    from registry.web import PULLS

    app[PULLS].note("nothing/here", "v1")  # a flush after the cancel: must not hit a broken connection
    flushed = []
    real_flush = app[PULLS].details.record_pulls

    async def record(batch):
        await real_flush(batch)
        flushed.append(batch)

    monkeypatch.setattr(app[PULLS].details, "record_pulls", record)
    with caplog.at_level(logging.WARNING):
        await client.close()
        gc.collect()  # a task whose exception nobody retrieved is reported when it is collected
        await asyncio.sleep(0)
    assert flushed, "the pull flush at shutdown did not run"
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING
                and ("another operation" in r.getMessage() or "never retrieved" in r.getMessage()
                     or "could not record" in r.getMessage())]
    assert not problems, [r.getMessage() for r in problems]
    assert index is not None


async def _terminate_backends(postgres_server, postgres_url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(host="127.0.0.1", port=postgres_server.port, user="postgres", database="postgres")
    try:
        return await conn.fetchval("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                   "WHERE datname = $1 AND pid <> pg_backend_pid()", postgres_url.rsplit("/", 1)[1])
    finally:
        await conn.close()


async def test_a_ranking_refresh_after_the_server_closed_pooled_connections(postgres_server, postgres_url, tmp_path,
                                                                          aiohttp_client, caplog):
    """The server ends the pool's idle connections (a restart, an admin, a failover): the
    next background refresh gets a fresh connection instead of failing on a dead one."""
    config = RegistryConfig(data_dir=str(tmp_path / "data"), database_url=postgres_url).finish()
    app = create_app(config)
    client = await aiohttp_client(app)
    ranking = app[SERVICE].ranking
    await ranking.get()
    await asyncio.gather(*(app[state.INDEX].db.read(lambda conn: conn.execute(text("SELECT 1")).all())
                           for _ in range(4)))  # several connections in the pool
    assert await _terminate_backends(postgres_server, postgres_url) >= 1
    await asyncio.sleep(0.2)  # the goodbye messages have arrived on the idle sockets
    with caplog.at_level(logging.WARNING):
        ranking.mark_dirty()
        for _ in range(3):
            ranking.mark_dirty()
            await ranking._start_refresh()  # what a page's background refresh runs
        for path in ("/ui/", "/api/v1/repositories", "/ui/storage"):
            assert (await client.get(path)).status == 200, path
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]

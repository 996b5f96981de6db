"""What each catalog page costs the database: statements, connection checkouts, round trips.

    python -m bench.catalog_queries DATABASE_URL DATA_DIR [ROUNDS]

Serves an already seeded index (bench/catalog_seed.py; ``bench.catalog`` seeds one) in this
process, with hooks that count, per page request:

- SQL statements (SQLAlchemy's ``before_cursor_execute``),
- connection checkouts from the pool (``checkout``: each read or write the page makes),
- round trips to PostgreSQL: writes on sockets whose peer is the database's port (asyncpg sends
  one batch of messages per round trip: a statement, BEGIN, ROLLBACK, a pre-ping).

and the median / p95 of ROUNDS requests. Round trips are what a loaded machine makes slow (each
one waits for the database's process to be scheduled), so this is the number to keep small.
"""
from __future__ import annotations

import asyncio
import statistics
import sys
import time
from asyncio import selector_events

from sqlalchemy import event
from sqlalchemy.engine import make_url

from bench.catalog import catalog_pages
from bench.catalog_seed import repo_name

COUNTS = {"statements": 0, "checkouts": 0, "round_trips": 0}


def _count_round_trips(db_port: int) -> None:
    """Count writes to the database's port on the default event loop's socket transports."""
    transport = selector_events._SelectorSocketTransport
    real_write = transport.write

    def write(self, data):  # type: ignore[no-untyped-def]
        peer = self.get_extra_info("peername")
        if peer and peer[1] == db_port:
            COUNTS["round_trips"] += 1
        return real_write(self, data)

    transport.write = write  # type: ignore[method-assign]


async def measure(url: str, data_dir: str, rounds: int) -> list[dict]:
    from aiohttp.test_utils import TestClient, TestServer

    from registry import state
    from registry.app import create_app
    from registry.config import RegistryConfig

    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        _count_round_trips(parsed.port or 5432)
    app = create_app(RegistryConfig(data_dir=data_dir, database_url=url).finish())
    out = []
    async with TestClient(TestServer(app)) as client:
        engine = app[state.INDEX].db.engine.sync_engine

        def bump(key: str):
            return lambda *_a, **_k: COUNTS.__setitem__(key, COUNTS[key] + 1)

        event.listen(engine, "before_cursor_execute", bump("statements"))
        event.listen(engine.pool, "checkout", bump("checkouts"))
        await (await client.get("/api/v1/repositories?sort=size")).read()  # the ranking snapshot
        first = repo_name(0)
        digest = (await (await client.get(f"/api/v1/repositories/{first}/tags")).json())["tags"][0]["digest"]
        count = (await (await client.get("/api/v1/repositories?per_page=1")).json())["total"]
        for label, path in catalog_pages(first, digest, max(1, count // 50 // 2)):
            await (await client.get(path)).read()  # warm: caches, prepared statements
            COUNTS.update(statements=0, checkouts=0, round_trips=0)
            response = await client.get(path)
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path}: {response.status}")
            cost = dict(COUNTS)
            samples = []
            for _ in range(rounds):
                started = time.perf_counter()
                await (await client.get(path)).read()
                samples.append((time.perf_counter() - started) * 1000)
            samples.sort()
            out.append({"page": label, **cost, "median_ms": round(statistics.median(samples), 1),
                        "p95_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.95))], 1)})
    return out


def main(argv: list[str]) -> None:
    import logging

    logging.disable(logging.WARNING)  # the access log would drown the table
    rows = asyncio.run(measure(argv[0], argv[1], int(argv[2]) if len(argv) > 2 else 30))
    print(f"{'page':42} {'stmts':>5} {'checkouts':>9} {'round trips':>11} {'median':>8} {'p95':>8}")
    for r in rows:
        print(f"{r['page'][:42]:42} {r['statements']:>5} {r['checkouts']:>9} {r['round_trips']:>11} "
              f"{r['median_ms']:>6} ms {r['p95_ms']:>6} ms")


if __name__ == "__main__":
    main(sys.argv[1:])

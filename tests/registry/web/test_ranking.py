"""The ranking snapshot's refresh policy, with a fake query object (no database)."""
from __future__ import annotations

import asyncio

from registry.web import ranking as ranking_mod
from registry.web.ranking import Ranking


class FakeQueries:
    def __init__(self, delay: float) -> None:
        self.delay, self.calls, self.rows = delay, 0, [(1, "a", 1, 10, 1.0)]

    async def repository_ranking(self):
        self.calls += 1
        await asyncio.sleep(self.delay)
        return list(self.rows)

    async def blob_totals(self):
        return 3, 30


async def test_small_registry_refreshes_inline_after_a_write():
    q = FakeQueries(0.0)
    r = Ranking(q)
    assert (await r.get()).stats.repositories == 1
    assert (await r.get()) is r.snapshot and q.calls == 1  # fresh: no query
    q.rows.append((2, "b", 5, 50, 2.0))
    r.mark_dirty()
    snap = await r.get()
    assert q.calls == 2 and snap.stats.repositories == 2 and snap.stats.tags == 6
    assert [snap.rows[i][1] for i in snap.order("tags")] == ["a", "b"]
    assert [snap.rows[i][1] for i in snap.order("name")] == ["a", "b"]


async def test_large_registry_serves_the_old_snapshot_while_refreshing(monkeypatch):
    monkeypatch.setattr(ranking_mod, "INLINE_BUDGET", 0.01)
    monkeypatch.setattr(ranking_mod, "THROTTLE", 0.0)
    monkeypatch.setattr(ranking_mod, "SMALL", 0)  # as large as a slow refresh says
    q = FakeQueries(0.05)
    r = Ranking(q)
    first = await r.get()  # nothing to serve yet: waits
    q.rows.append((2, "b", 5, 50, 2.0))
    r.mark_dirty()
    stale = await r.get()
    assert stale is first and stale.stats.repositories == 1  # answered at once, refresh started
    await asyncio.sleep(0.15)
    assert q.calls == 2 and (await r.get()).stats.repositories == 2
    await r.close()


async def test_stats_do_not_wait_for_a_slow_first_ranking(monkeypatch):
    monkeypatch.setattr(ranking_mod, "INLINE_BUDGET", 0.01)
    q = FakeQueries(0.2)
    r = Ranking(q)
    r.start()
    assert await r.get_soon() is None  # still building: the caller shows cheap counts instead
    await asyncio.sleep(0.3)
    assert (await r.get_soon()).stats.repositories == 1
    await r.close()

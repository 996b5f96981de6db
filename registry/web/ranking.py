"""A snapshot of every repository's aggregates, for sorting by them and for the stats header.

Sorting 20,000 repositories by size or tag count needs every repository's numbers; computing
them is one grouped pass over tags and blob links (about a second at 20k repositories / 100k
tags on SQLite), far too slow per request. So the catalog keeps the last result in memory and
refreshes it when it is stale:

- a write seen by this process (any successful non-GET request under /v2/, see ``mark_dirty``)
  makes it stale at once; other processes' writes (a second replica, ``gc``) after ``max_age``
  (or 60 times the refresh's cost, when that is longer: about 3 minutes at 20k/100k);
- a small registry refreshes inline (the last refresh took under ``INLINE_BUDGET``, or it has
  fewer than ``SMALL`` repositories), so a page shows a push immediately; a large one serves the previous snapshot and refreshes in the
  background, at most one refresh at a time and not more often than ``THROTTLE`` x its cost.

Rows on a page always show fresh numbers (registry.index.catalog computes them per page); only
the order of an aggregate sort and the header's totals may lag by one refresh.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from ..index.catalog import CatalogQueries, Stats

log = logging.getLogger("registry.web")
INLINE_BUDGET = 0.2
SMALL = 2000  # repositories: a registry this small always refreshes inline (a loaded machine can
# make even an empty registry's refresh cost more than INLINE_BUDGET once)
THROTTLE = 20.0  # a refresh costing c seconds runs at most every 20c: under 5% of a core
AGE_PER_COST = 60.0  # and other processes' writes are picked up within max(max_age, 60c)
SORT_KEYS = {"name": 1, "tags": 2, "size": 3, "pushed": 4}


def _report_failure(task: asyncio.Task) -> None:
    """A refresh nobody waits for (started in the background) that failed: say so in one line.
    Retrieving the exception here also keeps asyncio from reporting it, with a traceback, only
    when the task is collected (at the end of a run, far from its cause)."""
    if not task.cancelled() and task.exception() is not None:
        e = task.exception()
        log.warning("catalog ranking refresh failed (the previous one is served): %s: %s",
                    type(e).__name__, str(e).splitlines()[0] if str(e) else "")


@dataclass
class Snapshot:
    rows: list[tuple[int, str, int, int, float]] = field(default_factory=list)
    stats: Stats = field(default_factory=lambda: Stats(0, 0, 0, 0, 0))
    taken_at: float = 0.0
    cost: float = 0.0
    orders: dict[str, list[int]] = field(default_factory=dict)  # sort key -> row positions
    generation: int = 0  # the write count (``mark_dirty`` calls) it was taken after

    def order(self, key: str) -> list[int]:
        """Row positions by ``key`` ascending (ties by name), computed once per snapshot."""
        if key not in self.orders:
            col = SORT_KEYS[key]
            self.orders[key] = sorted(range(len(self.rows)), key=lambda i: (self.rows[i][col] or 0, self.rows[i][1]))
        return self.orders[key]


class Ranking:
    def __init__(self, queries: CatalogQueries, max_age: float = 30.0) -> None:
        self.queries = queries
        self.max_age = max_age
        self.snapshot: Snapshot | None = None
        self.dirty = True
        self.generation = 0
        self._refreshing: asyncio.Task | None = None
        self._closed = False

    def mark_dirty(self) -> None:
        self.dirty = True
        self.generation += 1

    def _stale(self) -> bool:
        s = self.snapshot
        return s is None or self.dirty or time.monotonic() - s.taken_at > max(self.max_age, s.cost * AGE_PER_COST)

    async def _refresh(self) -> Snapshot:
        self.dirty = False
        generation = self.generation
        started = time.monotonic()
        try:
            rows = await self.queries.repository_ranking()
            blobs, stored = await self.queries.blob_totals()
        except BaseException:
            self.dirty = True  # not refreshed: the next page asks again
            raise
        stats = Stats(len(rows), sum(r[2] for r in rows), blobs, stored, sum(r[3] for r in rows))
        cost = time.monotonic() - started
        self.snapshot = Snapshot(rows, stats, time.monotonic(), cost, generation=generation)
        if cost > INLINE_BUDGET:
            log.info("catalog ranking of %d repositories refreshed in %.2fs", len(rows), cost)
        return self.snapshot

    def _start_refresh(self) -> asyncio.Task:
        if self._closed:
            raise RuntimeError("the catalog ranking is closed")  # no task may outlive the app
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._refresh())
            self._refreshing.add_done_callback(_report_failure)
        return self._refreshing

    def fresh(self) -> Snapshot | None:
        """The snapshot if nothing made it stale (no write seen since, younger than max_age)."""
        return None if self._stale() else self.snapshot

    async def get_soon(self) -> Snapshot | None:
        """Like ``get``, but before the first snapshot exists wait only ``INLINE_BUDGET`` for it
        (None then: a large registry that just started is still being ranked)."""
        if self.snapshot is not None:
            return await self.get()
        try:
            return await asyncio.wait_for(asyncio.shield(self._start_refresh()), INLINE_BUDGET)
        except asyncio.TimeoutError:
            return None

    def start(self) -> None:
        """Build the first snapshot in the background."""
        self._start_refresh()

    async def get(self) -> Snapshot:
        if not self._stale():
            return self.snapshot  # type: ignore[return-value]
        s = self.snapshot
        if s is None or s.cost < INLINE_BUDGET or len(s.rows) < SMALL:
            snap = await asyncio.shield(self._start_refresh())
            if snap.generation < self.generation:  # that refresh began before a write: once more
                snap = await asyncio.shield(self._start_refresh())
            return snap
        if time.monotonic() - s.taken_at > s.cost * THROTTLE:
            self._start_refresh()
        return s

    async def close(self) -> None:
        self._closed = True
        if self._refreshing is not None and not self._refreshing.done():
            self._refreshing.cancel()
            try:
                await self._refreshing
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                pass

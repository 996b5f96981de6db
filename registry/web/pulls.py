"""When each tag was last pulled, recorded without slowing a pull down.

A successful ``GET /v2/<name>/manifests/<reference>`` only notes ``(name, reference) -> now``
in a dict (a response hook, after the handler: no I/O, no await); a background task writes
what was noted every ``catalog.pull_flush_interval`` seconds (default 5) in one upsert
transaction, and once more at shutdown. Many pulls of the same tag between two flushes cost one
row write. If the flush fails (database busy), the noted pulls are kept for the next one; the
dict is bounded, so a flood of distinct references cannot grow memory without end.
"""
from __future__ import annotations

import asyncio
import logging
import time

from ..index.catalog_details import CatalogDetails

log = logging.getLogger("registry.web")
MAX_PENDING = 50_000


class PullRecorder:
    def __init__(self, details: CatalogDetails, interval: float = 5.0) -> None:
        self.details = details
        self.interval = interval
        self.pending: dict[tuple[str, str], float] = {}
        self._task: asyncio.Task | None = None
        self._stop = asyncio.Event()

    def note(self, name: str, reference: str) -> None:
        key = (name, reference)
        if len(self.pending) < MAX_PENDING or key in self.pending:
            self.pending[key] = time.time()

    async def flush(self) -> int:
        batch, self.pending = self.pending, {}
        if not batch:
            return 0
        try:
            await self.details.record_pulls(batch)
        except Exception:  # noqa: BLE001 - keep them for the next flush, say why once
            log.warning("could not record %d pull time(s); will retry", len(batch), exc_info=True)
            for key, at in batch.items():
                if len(self.pending) < MAX_PENDING:
                    self.pending.setdefault(key, at)
            return 0
        return len(batch)

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), self.interval)
            except asyncio.TimeoutError:
                await self.flush()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def close(self) -> None:
        # Stop between flushes, not in one: a flush cancelled mid-write would lose its batch
        # (taken out of ``pending`` before the write).
        if self._task is not None:
            self._stop.set()
            await self._task
        await self.flush()

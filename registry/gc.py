"""Full mark and sweep, for repairs (``dockyard-registry gc``): the online worker
(registry/lifecycle/worker.py) does the day-to-day work from its review queue.

Mark: every digest a manifest names (or that is a manifest), read once, only to pick candidates.
Sweep: each stored blob outside that set and older than the grace period goes through the same
locked claim as the worker's (registry/lifecycle/reviews.py), which checks the references again
inside the lock. So a push that lands between the mark and the sweep — whatever the grace, 0
included — either is seen by the claim (the blob stays) or finds the blob condemned and is
refused; it is never acknowledged with bytes that are then deleted (issue #13, item 8).
Bytes the index does not know (orphans: a crash between bytes and names) are claimed the same
way: the claim's review-row upsert serialises them with an upload naming them right then.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from sqlalchemy import Connection

from .index import Index
from .lifecycle import reviews
from .lifecycle.worker import GcWorker
from .storage.driver import StorageDriver

log = logging.getLogger(__name__)


@dataclass
class GcReport:
    live: int = 0
    scanned: int = 0
    swept: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    kept_young: int = 0
    kept_referenced: int = 0
    skipped: bool = False   # another replica held the GC lock (registry/index/gc_lock.py)


async def collect(index: Index, storage: StorageDriver, grace: float, dry_run: bool = False) -> GcReport:
    """One collection, unless another process sharing the index is collecting right now."""
    from .index.gc_lock import gc_lock

    async with gc_lock(index.engine) as held:
        if not held:
            log.info("gc: another process holds the GC lock; skipped")
            return GcReport(skipped=True)
        return await _collect(index, storage, grace, dry_run)


async def _collect(index: Index, storage: StorageDriver, grace: float, dry_run: bool) -> GcReport:
    report = GcReport()
    started = time.time()
    live = await index.referenced_digests()
    report.live = len(live)
    cutoff = started - grace
    worker = GcWorker(index, storage)
    async for info in storage.iter_blobs():
        report.scanned += 1
        digest = str(info.digest)
        if digest in live:
            continue
        if info.mtime >= cutoff:
            report.kept_young += 1
            continue
        if dry_run:
            report.swept.append(digest)
            report.freed_bytes += info.size
            continue
        size = await index.db.write(lambda conn, d=digest, s=info.size: _claim(conn, d, s))
        if size is None:
            report.kept_referenced += 1
            continue
        if await worker.sweep(digest, size) == "swept":
            report.swept.append(digest)
            report.freed_bytes += size
    log.info("gc: %d referenced, %d scanned, %d swept (%d bytes), %d kept (younger than grace), %d named meanwhile",
             report.live, report.scanned, len(report.swept), report.freed_bytes, report.kept_young,
             report.kept_referenced)
    return report


def _claim(conn: Connection, digest: str, stored_size: int) -> int | None:
    """Queue (or lock) the blob's review row, then the worker's claim under that lock."""
    reviews.enqueue_blobs(conn, [digest], 0.0, "full_gc")
    size = reviews.claim_blob(conn, digest, time.time())
    return None if size is None else (size or stored_size)

"""Online garbage collection: mark from the index, sweep storage, keep young blobs.

Mark: every digest a name still reaches — blobs linked to a repository, manifests, and what
manifests reference. Sweep: every stored blob outside that set whose file is older than the
grace period. The registry keeps serving meanwhile: a push in flight writes its bytes before
its index row (bytes first, names second), and committing or mounting an existing blob
refreshes the file's mtime, so the grace period covers anything a client is about to name.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from .index import Index
from .storage.driver import StorageDriver

log = logging.getLogger(__name__)


@dataclass
class GcReport:
    live: int = 0
    scanned: int = 0
    swept: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    kept_young: int = 0
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
    live = await index.live_digests()
    report.live = len(live)
    cutoff = started - grace
    async for info in storage.iter_blobs():
        report.scanned += 1
        digest = str(info.digest)
        if digest in live:
            continue
        if info.mtime >= cutoff:
            report.kept_young += 1
            continue
        if not dry_run and not await storage.delete(info.digest, older_than=cutoff):
            continue
        report.swept.append(digest)
        report.freed_bytes += info.size
    if report.swept and not dry_run:
        await index.forget_blobs(report.swept)
    log.info("gc: %d live, %d scanned, %d swept (%d bytes), %d kept (younger than grace)",
             report.live, report.scanned, len(report.swept), report.freed_bytes, report.kept_young)
    return report

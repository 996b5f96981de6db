"""Eviction: least recently pulled cached repositories go first once the cache is over ``max_size``.

An evicted repository is deleted the ordinary way — its manifests (and the tags on them) with
``Index.delete_manifest``, its blob links with ``Index.unlink_blob`` — so the bytes are freed by
the same garbage collection as any deleted content (and whatever it queues for review), never
here. The next pull of an evicted image fetches it again. Pull times are kept per repository
(``proxy_repositories.last_pulled_at``, refreshed at most once a minute per repository).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

log = logging.getLogger("registry.proxy")
INTERVAL = 60.0


@dataclass
class EvictionReport:
    total_before: int = 0
    total_after: int = 0
    evicted: list[str] = field(default_factory=list)


async def evict(svc, max_size: int) -> EvictionReport:
    queries, index = svc.cache.queries, svc.cache.index
    sizes = await queries.sizes()
    report = EvictionReport(sum(sizes.values()))
    total = report.total_before
    for repo in await queries.cached_repositories():  # least recently pulled first
        if total <= max_size:
            break
        manifests, blobs = await queries.contents(repo.name)
        for digest in manifests:
            await index.delete_manifest(repo.name, digest)
        for digest in blobs:
            await index.unlink_blob(repo.name, digest)
        await queries.drop_if_empty(repo.name)
        svc.forget_repository(repo.name)
        total -= sizes.get(repo.name, 0)
        report.evicted.append(repo.name)
    report.total_after = total
    if report.evicted:
        log.info("proxy: evicted %d cached repositor%s (least recently pulled), %d -> %d bytes (cap %d)",
                 len(report.evicted), "y" if len(report.evicted) == 1 else "ies", report.total_before, total, max_size)
    return report


async def eviction_loop(svc, max_size: int, interval: float = INTERVAL) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await evict(svc, max_size)
        except Exception:  # noqa: BLE001 - try again next round; the cache keeps serving
            log.exception("proxy: eviction failed")

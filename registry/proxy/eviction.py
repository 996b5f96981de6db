"""Eviction: least recently pulled cached repositories go first, to stay under a size.

Two callers: the loop that keeps the whole cache under ``proxy.max_size``, and a cache fill
that would take its namespace over its quota (registry/proxy/quota.py), which evicts cached
repositories of that namespace to make room.

Sizes count each blob once: a layer five cached repositories share is one set of bytes on disk,
and evicting one of them frees nothing of it (it is freed when the last holder goes). Local
repositories of a namespace count toward its quota but are never evicted.

An evicted repository is deleted the ordinary way — its manifests (and the tags on them) with
``Index.delete_manifest``, its blob links with ``Index.unlink_blob`` — so the bytes are freed by
the same garbage collection as any deleted content (and whatever it queues for review), never
here. The next pull of an evicted image fetches it again. Pull times are kept per repository
(``proxy_repositories.last_pulled_at``, refreshed at most once a minute per repository).
"""
from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field

log = logging.getLogger("registry.proxy")
INTERVAL = 60.0


@dataclass
class EvictionReport:
    total_before: int = 0
    total_after: int = 0
    evicted: list[str] = field(default_factory=list)


class Holdings:
    """What each repository holds, with each digest's holders counted, so the bytes that
    evicting a repository frees are those it was the last holder of."""

    def __init__(self, held: dict[str, dict[str, int]]) -> None:
        self.held = held
        self.holders = Counter(d for digests in held.values() for d in digests)
        self.sizes = {d: s for digests in held.values() for d, s in digests.items()}
        self.total = sum(self.sizes.values())

    def drop(self, repository: str) -> int:
        freed = 0
        for digest in self.held.pop(repository, {}):
            self.holders[digest] -= 1
            if self.holders[digest] == 0:
                freed += self.sizes[digest]
        self.total -= freed
        return freed


async def evict(svc, max_size: int, namespace: str | None = None, adding: int = 0,
                keep: str | None = None) -> EvictionReport:
    """Evict least recently pulled cached repositories until what they hold (``namespace``
    None) or what the namespace holds, plus ``adding`` bytes, fits in ``max_size``. ``keep``
    (the repository being filled) is never evicted."""
    queries = svc.cache.queries
    held, cached = await queries.holdings(namespace)
    holdings = Holdings(held)
    report = EvictionReport(holdings.total)
    for repo in await queries.cached_repositories():  # least recently pulled first
        if holdings.total + adding <= max_size:
            break
        if repo.name not in cached or repo.name == keep:
            continue
        await evict_repository(svc, repo.name)
        holdings.drop(repo.name)
        report.evicted.append(repo.name)
    report.total_after = holdings.total
    if report.evicted:
        log.info("proxy: evicted %d cached repositor%s (least recently pulled)%s, %d -> %d bytes (cap %d)",
                 len(report.evicted), "y" if len(report.evicted) == 1 else "ies",
                 f" for namespace {namespace}'s quota" if namespace is not None else "",
                 report.total_before, report.total_after, max_size)
    return report


async def evict_repository(svc, name: str) -> None:
    queries, index = svc.cache.queries, svc.cache.index
    manifests, blobs = await queries.contents(name)
    for digest in manifests:
        await index.delete_manifest(name, digest)
    for digest in blobs:
        await index.unlink_blob(name, digest)
    await queries.drop_if_empty(name)
    svc.forget_repository(name)


async def eviction_loop(svc, max_size: int, interval: float = INTERVAL) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await evict(svc, max_size)
        except Exception:  # noqa: BLE001 - try again next round; the cache keeps serving
            log.exception("proxy: eviction failed")

"""The online GC worker inside ``serve``: takes due review rows one at a time.

Manifests first (deleting one queues its blobs), then blobs. A blob sweep is three steps —
claim (condemn, committed), delete the bytes, finish (tombstone + rows) — so a process killed
half-way leaves a condemned row that the next worker resumes after ``RESUME_AFTER`` seconds;
pushes refuse condemned blobs meanwhile. On PostgreSQL several replicas may each run a worker:
``FOR UPDATE SKIP LOCKED`` gives every row to one of them. A failed byte deletion backs off
(2, 4, 8 ... up to 3600 s) and retries.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, select, update

from oci.digest import Digest
from registry.index.models import Blob, Manifest, ManifestReference, Repository

from . import reviews
from registry.index.lifecycle_models import BlobReview, ManifestReview, SweptBlob

log = logging.getLogger("registry.gc")
TOMBSTONE_TTL = 86400.0


@dataclass
class Counters:
    """What the worker did (read by /metrics)."""

    blobs_swept: int = 0
    blobs_kept: int = 0
    bytes_freed: int = 0
    manifests_deleted: int = 0
    manifests_kept: int = 0
    failures: int = 0


class GcWorker:
    def __init__(self, index, storage, idle_sleep: float = 1.0) -> None:
        self.index = index
        self.storage = storage
        self.idle_sleep = idle_sleep
        self.counters = Counters()
        self._last_prune = 0.0

    @property
    def db(self):
        return self.index.db

    # -- blobs --------------------------------------------------------------------------------
    async def review_next_blob(self) -> str | None:
        now = time.time()

        def claim(conn: Connection):
            reviews.take_write_lock(conn)
            row = reviews.next_due_blob(conn, now)
            if row is None:
                return None
            digest, sweeping_at, count = row
            if sweeping_at is not None:  # a sweep that died half-way (or failed): resume it
                size = conn.execute(select(Blob.size).where(Blob.digest == digest)).scalar() or 0
                conn.execute(update(BlobReview).where(BlobReview.digest == digest)
                             .values(review_after=now + reviews.RESUME_AFTER))
                return "sweep", digest, int(size), count
            size = reviews.claim_blob(conn, digest, now)
            return ("kept", digest, 0, count) if size is None else ("sweep", digest, size, count)

        taken = await self.db.write(claim)
        if taken is None:
            return None
        outcome, digest, size, count = taken
        if outcome == "kept":
            self.counters.blobs_kept += 1
            return "kept"
        return await self.sweep(digest, size, count)

    async def sweep(self, digest: str, size: int, count: int = 0) -> str:
        """Bytes first, then the rows: a crash in between leaves a condemned row to resume."""
        try:
            await self.storage.delete(Digest.parse(digest))
        except Exception as e:  # storage down: try again later, the blob stays condemned
            backoff = min(3600.0, 2.0 ** min(count + 1, 12))
            self.counters.failures += 1
            log.warning("gc: deleting %s failed (%s); retrying in %.0f s", digest, e, backoff)
            await self.db.write(lambda conn: reviews.postpone_blob(conn, digest, time.time() + backoff))
            return "failed"
        await self.db.write(lambda conn: reviews.finish_sweep(conn, digest, size))
        self.counters.blobs_swept += 1
        self.counters.bytes_freed += size
        log.info("gc: swept %s (%d bytes)", digest, size)
        return "swept"

    # -- manifests ----------------------------------------------------------------------------
    async def review_next_manifest(self) -> str | None:
        now = time.time()
        life = self.index.lifecycle.bind()

        def review(conn: Connection) -> str | None:
            reviews.take_write_lock(conn)
            row = reviews.next_due_manifest(conn, now)
            if row is None:
                return None
            repo_id, digest, force = row
            q = select(Manifest.id, Manifest.media_type, Manifest.size).where(
                Manifest.repository_id == repo_id, Manifest.digest == digest)
            if conn.dialect.name == "postgresql":
                q = q.with_for_update()
            found = conn.execute(q).first()
            if found is None or reviews.manifest_is_kept(conn, repo_id, digest) or (
                    not force and life.gc.untagged_after <= 0):
                reviews.drop_manifest_review(conn, repo_id, digest)
                return "kept"
            manifest_id, media_type, size = found
            name = conn.execute(select(Repository.name).where(Repository.id == repo_id)).scalar_one()
            life.manifest_deleting(conn, repo_id, name, manifest_id, digest, media_type, size, force=force)
            conn.execute(delete(ManifestReference).where(ManifestReference.manifest_id == manifest_id))
            conn.execute(delete(Manifest).where(Manifest.id == manifest_id))
            reviews.drop_manifest_review(conn, repo_id, digest)
            return "deleted"

        outcome = await self.db.write(review)
        if outcome == "deleted":
            self.counters.manifests_deleted += 1
        elif outcome == "kept":
            self.counters.manifests_kept += 1
        return outcome

    # -- the loop -----------------------------------------------------------------------------
    async def next_due(self) -> float | None:
        """When the earliest review is due (a read: an idle worker takes no write lock)."""

        def q(conn: Connection) -> float | None:
            a = conn.execute(select(func.min(BlobReview.review_after))).scalar()
            b = conn.execute(select(func.min(ManifestReview.review_after))).scalar()
            return min((v for v in (a, b) if v is not None), default=None)

        return await self.db.read(q)

    async def run_once(self) -> bool:
        """Review one row; False when nothing was due."""
        return bool(await self.review_next_manifest() or await self.review_next_blob())

    async def drain(self, limit: int = 100_000) -> int:
        """Review every row that is due now (for tests and the CLI)."""
        n = 0
        while n < limit and await self.run_once():
            n += 1
        return n

    async def _prune(self) -> None:
        if time.time() - self._last_prune < 600:
            return
        self._last_prune = time.time()
        cutoff = time.time() - TOMBSTONE_TTL
        await self.db.write(lambda conn: conn.execute(delete(SweptBlob).where(SweptBlob.swept_at < cutoff)))

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                if await self.run_once():
                    failures = 0
                    continue
                await self._prune()
                due = await self.next_due()
                wait = self.idle_sleep if due is None else min(self.idle_sleep, max(0.0, due - time.time()))
                await asyncio.sleep(max(wait, 0.01))
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the database or storage is away: say so, back off, retry
                failures += 1
                self.counters.failures += 1
                backoff = min(30.0, 0.5 * 2 ** failures)
                log.warning("gc worker: review failed (%s: %s); retrying in %.1f s", e.__class__.__name__,
                            str(e).splitlines()[0][:300] if str(e) else "", backoff)
                await asyncio.sleep(backoff)

"""Consistency check: every name in the index leads to bytes, and all bytes are known.

Bytes first, names second means this should never find anything; it exists to prove that after
a crash, a restore from backup, or a storage mishap. Problems:

- MISSING: a repository names a blob or manifest whose bytes are not stored;
  except when a sweep condemned the blob (``sweeping_at`` set) and stopped between removing
  the bytes and removing the rows: that is PENDING, not a problem, since the next lifecycle
  worker resumes the sweep and removes the names (no push may name a condemned blob);
- SIZE: the stored bytes have another size than the index says;
- ORPHAN: stored bytes the index does not know at all (no blob row, no GC review queued), so no
  review will ever collect them; ``dockyard-registry gc`` removes them.
Read-only: it reports, it does not repair.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from oci.digest import Digest

from .index import Index
from .index.models import Blob
from .index.lifecycle_models import BlobReview
from .storage.driver import StorageDriver


@dataclass
class FsckReport:
    checked: int = 0
    missing: list[tuple[str, str, str]] = field(default_factory=list)  # (repository, digest, kind)
    wrong_size: list[tuple[str, int, int]] = field(default_factory=list)  # (digest, index, storage)
    orphans: list[tuple[str, int]] = field(default_factory=list)  # (digest, stored size)
    pending_sweep: list[tuple[str, str, str]] = field(default_factory=list)  # like missing, condemned

    @property
    def problems(self) -> int:
        return len(self.missing) + len(self.wrong_size) + len(self.orphans)


async def known_digests(index: Index) -> set[str]:
    """Digests with a blob row or a queued review (the worker will look at those)."""
    q1, q2 = select(Blob.digest), select(BlobReview.digest)
    return await index.db.read(lambda conn: set(conn.execute(q1).scalars()) | set(conn.execute(q2).scalars()))


async def condemned_digests(index: Index) -> set[str]:
    """Blobs a sweep has committed to delete (it may have removed the bytes already)."""
    q = select(BlobReview.digest).where(BlobReview.sweeping_at.is_not(None))
    return await index.db.read(lambda conn: set(conn.execute(q).scalars()))


async def check(index: Index, storage: StorageDriver) -> FsckReport:
    report = FsckReport()
    sizes: dict[str, int | None] = {}
    for repository, digest, kind in await index.named_digests():
        report.checked += 1
        if digest not in sizes:
            sizes[digest] = await storage.stat(Digest.parse(digest))
        if sizes[digest] is None:
            report.missing.append((repository, digest, kind))
    if report.missing:
        condemned = await condemned_digests(index)
        report.pending_sweep = [m for m in report.missing if m[1] in condemned]
        report.missing = [m for m in report.missing if m[1] not in condemned]
    for digest, size in await index.blob_sizes(list(sizes)):
        stored = sizes.get(digest)
        if stored is not None and stored != size:
            report.wrong_size.append((digest, size, stored))
    known = await known_digests(index)
    async for info in storage.iter_blobs():
        if str(info.digest) not in known:
            report.orphans.append((str(info.digest), info.size))
    return report

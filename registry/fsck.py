"""Consistency check: every name in the index must lead to bytes in storage.

Bytes first, names second means this should never find anything; it exists to prove that after
a crash, a restore from backup, or a storage mishap. Read-only: it reports, it does not repair.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from oci.digest import Digest

from .index import Index
from .storage.driver import StorageDriver


@dataclass
class FsckReport:
    checked: int = 0
    missing: list[tuple[str, str, str]] = field(default_factory=list)  # (repository, digest, kind)
    wrong_size: list[tuple[str, int, int]] = field(default_factory=list)  # (digest, index, storage)


async def check(index: Index, storage: StorageDriver) -> FsckReport:
    report = FsckReport()
    sizes: dict[str, int | None] = {}
    for repository, digest, kind in await index.named_digests():
        report.checked += 1
        if digest not in sizes:
            sizes[digest] = await storage.stat(Digest.parse(digest))
        if sizes[digest] is None:
            report.missing.append((repository, digest, kind))
    for digest, size in await index.blob_sizes(list(sizes)):
        stored = sizes.get(digest)
        if stored is not None and stored != size:
            report.wrong_size.append((digest, size, stored))
    return report

"""Retention rules: which tags go, evaluated per repository; the first rule whose glob matches
the repository wins.

A rule keeps tags matching ``keep_tags`` or ``protected`` (fnmatch patterns: ``v*``, ``latest``)
and never counts them; of the other tags the ``keep_last`` most recently pushed stay, and of the
rest only those older than ``older_than`` go (all of them without it). A manifest left without
tags is queued for the GC worker with ``force`` (deleted even when ``gc.untagged_after`` is 0),
so its bytes go through the same safe review as everything else.
"""
from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field

from sqlalchemy import Connection, delete, func, select

from registry.index.models import Blob, Manifest, ManifestReference, Repository, RepositoryBlob, Tag

from . import reviews
from .settings import RetentionRule, RetentionSettings


@dataclass
class RetentionReport:
    tags: list[tuple[str, str, str]] = field(default_factory=list)  # (repository, tag, digest)
    untagged: list[tuple[str, str]] = field(default_factory=list)  # (repository, manifest digest)
    freed_bytes: int = 0


def rule_for(settings: RetentionSettings, repository: str) -> RetentionRule | None:
    return next((r for r in settings.rules if r.matches(repository)), None)


def doomed_tags(rule: RetentionRule, tags: list[tuple[str, str, float]], now: float) -> list[tuple[str, str]]:
    """(tag, digest) pairs the rule deletes from ``tags`` = [(name, digest, pushed_at)]."""
    kept_patterns = (*rule.keep_tags, *rule.protected)
    counted = [t for t in tags if not any(fnmatch.fnmatchcase(t[0], p) for p in kept_patterns)]
    counted.sort(key=lambda t: (t[2], t[0]), reverse=True)  # newest push first
    rest = counted[rule.keep_last:] if rule.keep_last is not None else counted
    if rule.older_than is not None:
        rest = [t for t in rest if t[2] < now - rule.older_than]
    return [(name, digest) for name, digest, _ in rest]


def _freed_bytes(conn: Connection, manifest_ids: set[int]) -> int:
    """Bytes that go once these manifests are deleted: what they name (through their
    repository's link) or are, minus what any other manifest still names."""
    if not manifest_ids:
        return 0
    ids = sorted(manifest_ids)
    own = set(conn.execute(select(Manifest.digest).where(Manifest.id.in_(ids))).scalars())
    named = set(conn.execute(
        select(ManifestReference.digest).join(Manifest, Manifest.id == ManifestReference.manifest_id)
        .join(RepositoryBlob, (RepositoryBlob.repository_id == Manifest.repository_id)
              & (RepositoryBlob.digest == ManifestReference.digest))
        .where(ManifestReference.manifest_id.in_(ids))).scalars())
    candidates = sorted(own | named)
    if not candidates:
        return 0
    still = set(conn.execute(select(ManifestReference.digest).where(
        ManifestReference.digest.in_(candidates), ManifestReference.manifest_id.not_in(ids))).scalars())
    still |= set(conn.execute(select(Manifest.digest).where(
        Manifest.digest.in_(candidates), Manifest.id.not_in(ids))).scalars())
    gone = [d for d in candidates if d not in still]
    if not gone:
        return 0
    return int(conn.execute(select(func.coalesce(func.sum(Blob.size), 0)).where(Blob.digest.in_(gone))).scalar_one())


async def apply_retention(index, settings: RetentionSettings, dry_run: bool = False) -> RetentionReport:
    report = RetentionReport()
    if not settings.rules:
        return report
    now = time.time()
    life = index.lifecycle.bind()

    def run(conn: Connection) -> None:
        if not dry_run:
            reviews.take_write_lock(conn)
        doomed_ids: set[int] = set()
        for repo_id, name in conn.execute(select(Repository.id, Repository.name).order_by(Repository.name)).all():
            rule = rule_for(settings, name)
            if rule is None:
                continue
            tags = [tuple(t) for t in conn.execute(select(Tag.name, Tag.manifest_digest, Tag.updated_at)
                                                   .where(Tag.repository_id == repo_id)).all()]
            doomed = doomed_tags(rule, tags, now)  # type: ignore[arg-type]
            if not doomed:
                continue
            gone_names = {t for t, _ in doomed}
            remaining = {d for t, d, _ in tags if t not in gone_names}
            for tag, digest in doomed:
                report.tags.append((name, tag, digest))
                if not dry_run:
                    life.tag_deleting(conn, repo_id, name, tag, digest)
                    conn.execute(delete(Tag).where(Tag.repository_id == repo_id, Tag.name == tag))
            untagged = sorted({d for _, d in doomed} - remaining)
            for digest in untagged:
                report.untagged.append((name, digest))
            if untagged:
                doomed_ids |= set(conn.execute(select(Manifest.id).where(
                    Manifest.repository_id == repo_id, Manifest.digest.in_(untagged))).scalars())
                if not dry_run:
                    reviews.enqueue_manifests(conn, repo_id, untagged, now, "retention", force=True)
        report.freed_bytes = _freed_bytes(conn, doomed_ids)

    await (index.db.read(run) if dry_run else index.db.write(run))
    return report

"""The SQL of online GC, as functions of a Connection inside the caller's transaction.

The safety protocol (why nothing a push names is ever deleted):

- A sweep has two transactions. ``claim`` locks the review row (``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL), then the blob row (``FOR UPDATE``), checks with one indexed query that no
  manifest names the digest, and commits ``sweeping_at``: the blob is condemned. Then the bytes
  are deleted, then ``finish`` writes a tombstone (``gc_swept_blobs``) and deletes the rows.
- A manifest push locks the blob rows it references ``FOR SHARE`` and refuses blobs that are gone
  or condemned. Locks order the two: either the push commits first and the claim then sees its
  references, or the claim commits first and the push then sees ``sweeping_at``.
- An upload (or any writer of bytes that are about to be named) queues a review of the digest
  and reads ``sweep_mark()`` in one transaction *before* writing its bytes (so bytes that a
  crash leaves unnamed are still known, and collected after ``review_delay``), and in the transaction that names them locks the review row (an upsert)
  and refuses when the blob is condemned or was swept after the mark: the sweep may have
  deleted the bytes it just wrote. The tombstone is written after the bytes went, so a sweep
  whose deletion followed the mark always has a tombstone id above it.
- SQLite has one writer at a time; every transaction here starts with a write so the lock is
  held from the first read (other processes such as ``gc`` wait on the busy timeout).
"""
from __future__ import annotations

import time
from typing import Iterable

from sqlalchemy import Connection, and_, bindparam, case, delete, exists, func, select, update

from registry.index import fast, prepared
from registry.index.models import Blob, Manifest, ManifestReference, RepositoryBlob, Tag

from registry.index.lifecycle_models import BlobReview, ManifestReview, SweptBlob

# A condemned blob whose sweep did not finish (the process died) is taken again after this.
RESUME_AFTER = 5.0

# A reference keeps a blob only through the referencing repository's link (#13.2: every read,
# GC marks included, goes through the links); a manifest's own bytes are kept by its row.
_LINKED_REFERENCE = (
    (Manifest.id == ManifestReference.manifest_id)
    & (RepositoryBlob.repository_id == Manifest.repository_id)
    & (RepositoryBlob.digest == ManifestReference.digest)
)
_REFERENCED = select(
    exists().where(ManifestReference.digest == bindparam("digest"), _LINKED_REFERENCE)
    | exists().where(Manifest.digest == bindparam("digest"))
)


def _greatest(conn: Connection, a, b):
    return func.max(a, b) if conn.dialect.name == "sqlite" else func.greatest(a, b)


def _insert(conn: Connection, table):
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    from sqlalchemy.dialects import postgresql

    return postgresql.insert(table)


def _pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


# The push path's statements are built once (building one cost as much as running it; profile
# in bench/results/PROFILE.md section 7); IN lists are expanding binds.
_NOOP_UPDATE = update(BlobReview).where(BlobReview.digest == "").values(review_count=0)
_SWEEP_MARK = select(func.coalesce(func.max(SweptBlob.id), 0))
_BLOBS_IN = select(Blob.digest).where(Blob.digest.in_(bindparam("digests", expanding=True))).order_by(Blob.digest)
_BLOBS_IN_FOR_SHARE = _BLOBS_IN.with_for_update(read=True)
_LINKED_IN = select(RepositoryBlob.digest).where(RepositoryBlob.repository_id == bindparam("repo_id"),
                                                 RepositoryBlob.digest.in_(bindparam("digests", expanding=True)))
_CONDEMNED_IN = select(BlobReview.digest).where(BlobReview.digest.in_(bindparam("digests", expanding=True)),
                                                BlobReview.sweeping_at.is_not(None))
_SWEEPING_AT = select(BlobReview.sweeping_at).where(BlobReview.digest == bindparam("digest"))
_SWEPT_SINCE = select(exists().where(SweptBlob.digest == bindparam("digest"), SweptBlob.id > bindparam("mark")))


def take_write_lock(conn: Connection) -> None:
    """SQLite: begin the write transaction now (a no-op UPDATE), so reads are protected too."""
    if conn.dialect.name == "sqlite":
        fast.execute(conn, _NOOP_UPDATE)


def is_referenced(conn: Connection, digest: str) -> bool:
    """One indexed query: does any manifest (any repository) name the digest, or is it one?"""
    return bool(fast.execute(conn, _REFERENCED, {"digest": digest}).scalar())


def sweep_mark(conn: Connection) -> int:
    return fast.execute(conn, _SWEEP_MARK).scalar_one()


# -- enqueueing (called by the transactions that may make garbage) ----------------------------
def enqueue_blobs(conn: Connection, digests: Iterable[str], after: float, event: str, postpone_only: bool = True) -> None:
    """Queue (or re-time) reviews. ``postpone_only``: an existing row's time only moves later."""
    rows = [{"digest": d, "review_after": after, "review_count": 0, "event": event, "created_at": time.time()}
            for d in sorted(set(digests))]
    if not rows:
        return
    prepared.execute(conn, f"blob_review:{postpone_only}", lambda: _blob_review_upsert(conn, postpone_only), rows)


def _blob_review_upsert(conn: Connection, postpone_only: bool):
    stmt = _insert(conn, BlobReview)
    return stmt.on_conflict_do_update(
        index_elements=["digest"],
        # A condemned row keeps its resume time: postponing it would block pushes of the blob.
        set_={"review_after": case((BlobReview.sweeping_at.is_(None),
                                    _greatest(conn, BlobReview.review_after, stmt.excluded.review_after)
                                    if postpone_only else stmt.excluded.review_after),
                                   else_=BlobReview.review_after),
              "event": stmt.excluded.event},
    )


def enqueue_manifests(conn: Connection, repo_id: int, digests: Iterable[str], after: float, event: str,
                      force: bool = False) -> None:
    rows = [{"repository_id": repo_id, "digest": d, "review_after": after, "review_count": 0, "event": event,
             "force": force, "created_at": time.time()} for d in sorted(set(digests))]
    if not rows:
        return
    prepared.execute(conn, f"manifest_review:{force}", lambda: _manifest_review_upsert(conn, force), rows)


def _manifest_review_upsert(conn: Connection, force: bool):
    stmt = _insert(conn, ManifestReview)
    set_ = {"review_after": stmt.excluded.review_after, "event": stmt.excluded.event}
    if force:
        set_["force"] = stmt.excluded.force
    return stmt.on_conflict_do_update(index_elements=["repository_id", "digest"], set_=set_)


# -- checks a push makes inside its transaction ------------------------------------------------
def unusable_blobs(conn: Connection, digests: Iterable[str], repo_id: int | None = None) -> set[str]:
    """Of ``digests``: those without a blob row (or, given ``repo_id``, a link in that
    repository) or condemned. Locks the blob rows FOR SHARE."""
    wanted = sorted(set(digests))
    if not wanted:
        return set()
    q = _BLOBS_IN_FOR_SHARE if _pg(conn) else _BLOBS_IN
    found = set(fast.execute(conn, q, {"digests": wanted}).scalars())
    if repo_id is not None:
        found &= set(fast.execute(conn, _LINKED_IN, {"repo_id": repo_id, "digests": wanted}).scalars())
    condemned = set(fast.execute(conn, _CONDEMNED_IN, {"digests": wanted}).scalars())
    return (set(wanted) - found) | condemned


def unusable_manifests(conn: Connection, repo_id: int, digests: Iterable[str]) -> set[str]:
    """Of ``digests`` (child manifests): those no longer in the repository. Locks FOR SHARE."""
    wanted = sorted(set(digests))
    if not wanted:
        return set()
    q = select(Manifest.digest).where(Manifest.repository_id == repo_id, Manifest.digest.in_(wanted))
    if _pg(conn):
        q = q.order_by(Manifest.digest).with_for_update(read=True)
    return set(wanted) - set(conn.execute(q).scalars())


def lock_manifest(conn: Connection, repo_id: int, digest: str) -> None:
    """A push that tags an existing manifest: serialise with the worker deciding to delete it."""
    if _pg(conn):
        conn.execute(select(Manifest.id).where(Manifest.repository_id == repo_id, Manifest.digest == digest)
                     .with_for_update(read=True))


def bytes_maybe_swept(conn: Connection, digest: str, mark: int) -> bool:
    """True when bytes written after ``mark`` was read may have been deleted by a sweep.

    The caller holds the review row's lock (an upsert) or the blob row's (FOR SHARE) first, so
    a sweep that is deciding right now has finished its claim before we look."""
    condemned = fast.execute(conn, _SWEEPING_AT, {"digest": digest}).scalar()
    swept = fast.execute(conn, _SWEPT_SINCE, {"digest": digest, "mark": mark}).scalar()
    return condemned is not None or bool(swept)


# -- the worker's side ----------------------------------------------------------------------
def next_due_blob(conn: Connection, now: float) -> tuple[str, float | None, int] | None:
    q = (select(BlobReview.digest, BlobReview.sweeping_at, BlobReview.review_count)
         .where(BlobReview.review_after <= now).order_by(BlobReview.review_after).limit(1))
    if _pg(conn):
        q = q.with_for_update(skip_locked=True)
    row = conn.execute(q).first()
    return (row[0], row[1], row[2]) if row else None


def claim_blob(conn: Connection, digest: str, now: float) -> int | None:
    """Lock the blob row, and condemn it when nothing names it. Returns its size, or None
    (kept: the review row is dropped)."""
    q = select(Blob.size).where(Blob.digest == digest)
    if _pg(conn):
        q = q.with_for_update()
    size = conn.execute(q).scalar()
    if is_referenced(conn, digest):
        conn.execute(delete(BlobReview).where(BlobReview.digest == digest))
        return None
    conn.execute(update(BlobReview).where(BlobReview.digest == digest).values(
        sweeping_at=now, review_after=now + RESUME_AFTER, review_count=BlobReview.review_count + 1))
    return int(size or 0)


def finish_sweep(conn: Connection, digest: str, size: int) -> None:
    """After the bytes are gone: the tombstone, then the names (links go by cascade)."""
    conn.execute(_insert(conn, SweptBlob).values(digest=digest, size=size, swept_at=time.time()))
    conn.execute(delete(Blob).where(Blob.digest == digest))
    conn.execute(delete(BlobReview).where(BlobReview.digest == digest))


def postpone_blob(conn: Connection, digest: str, until: float) -> None:
    conn.execute(update(BlobReview).where(BlobReview.digest == digest).values(
        review_after=until, review_count=BlobReview.review_count + 1))


def next_due_manifest(conn: Connection, now: float) -> tuple[int, str, bool] | None:
    q = (select(ManifestReview.repository_id, ManifestReview.digest, ManifestReview.force)
         .where(ManifestReview.review_after <= now).order_by(ManifestReview.review_after).limit(1))
    if _pg(conn):
        q = q.with_for_update(skip_locked=True)
    row = conn.execute(q).first()
    return (row[0], row[1], bool(row[2])) if row else None


def manifest_is_kept(conn: Connection, repo_id: int, digest: str) -> bool:
    """Tagged, or a child of an index in the same repository."""
    tagged = exists().where(Tag.repository_id == repo_id, Tag.manifest_digest == digest)
    child = (exists().where(ManifestReference.digest == digest, ManifestReference.kind == "manifest",
                            Manifest.id == ManifestReference.manifest_id, Manifest.repository_id == repo_id))
    return bool(conn.execute(select(tagged | child)).scalar())


def drop_manifest_review(conn: Connection, repo_id: int, digest: str) -> None:
    conn.execute(delete(ManifestReview).where(and_(ManifestReview.repository_id == repo_id,
                                                   ManifestReview.digest == digest)))

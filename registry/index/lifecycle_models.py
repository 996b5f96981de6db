"""The lifecycle's tables: GC review queues, sweep tombstones, namespace quotas, event queue.

Review rows are written by the same transactions that can make garbage (GitLab registry's
design): the worker never walks storage, it takes due rows one at a time.

- ``gc_blob_reviews``: a blob that may have lost its last reference (manifest deleted, upload
  never used). ``sweeping_at`` is set, in a committed transaction, once the worker decided to
  delete: from then on no push may name the blob, and a worker that died half-way resumes it.
- ``gc_manifest_reviews``: a manifest that may have become untagged; ``force`` marks the ones
  retention untagged (deleted when still untagged, whatever ``gc.untagged_after``).
- ``gc_swept_blobs``: one row per sweep, written after the bytes went: an upload that committed
  bytes before that moment learns here that they may be gone (see lifecycle/reviews.py).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String

from .models import Base, DIGEST, Mapped, mapped_column, now


class BlobReview(Base):
    __tablename__ = "gc_blob_reviews"
    __table_args__ = (Index("ix_gc_blob_reviews_due", "review_after"),)

    digest: Mapped[str] = mapped_column(DIGEST, primary_key=True)
    review_after: Mapped[float] = mapped_column(Float)
    review_count: Mapped[int] = mapped_column(Integer, default=0)
    event: Mapped[str] = mapped_column(String(32))
    sweeping_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class ManifestReview(Base):
    __tablename__ = "gc_manifest_reviews"
    __table_args__ = (Index("ix_gc_manifest_reviews_due", "review_after"),)

    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True)
    digest: Mapped[str] = mapped_column(DIGEST, primary_key=True)
    review_after: Mapped[float] = mapped_column(Float)
    review_count: Mapped[int] = mapped_column(Integer, default=0)
    event: Mapped[str] = mapped_column(String(32))
    force: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class SweptBlob(Base):
    __tablename__ = "gc_swept_blobs"
    __table_args__ = (Index("ix_gc_swept_blobs_digest", "digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    digest: Mapped[str] = mapped_column(DIGEST)
    size: Mapped[int] = mapped_column(BigInteger)
    swept_at: Mapped[float] = mapped_column(Float, default=now)


class NamespaceQuota(Base):
    __tablename__ = "namespace_quotas"

    namespace: Mapped[str] = mapped_column(String(255), primary_key=True)
    limit_bytes: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[float] = mapped_column(Float, default=now)


class NotificationEvent(Base):
    """An event waiting for one endpoint; deleted once delivered (in id order per endpoint)."""

    __tablename__ = "notification_events"
    __table_args__ = (Index("ix_notification_events_endpoint", "endpoint", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    endpoint: Mapped[str] = mapped_column(String(128))
    repository: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[float] = mapped_column(Float, default=now)

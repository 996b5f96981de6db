"""Lifecycle: GC review queues (blobs, manifests), sweep tombstones, namespace quotas, events.

Revision ID: 0003_lifecycle
Revises: 0007_regcore_uploads
Create Date: 2026-12-01 23:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_lifecycle"
down_revision = "0007_regcore_uploads"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gc_blob_reviews",
        sa.Column("digest", sa.String(length=200), nullable=False),
        sa.Column("review_after", sa.Float(), nullable=False),
        sa.Column("review_count", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("sweeping_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_index("ix_gc_blob_reviews_due", "gc_blob_reviews", ["review_after"])
    op.create_table(
        "gc_manifest_reviews",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=200), nullable=False),
        sa.Column("review_after", sa.Float(), nullable=False),
        sa.Column("review_count", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("force", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["repository_id"], ["repositories.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("repository_id", "digest"),
    )
    op.create_index("ix_gc_manifest_reviews_due", "gc_manifest_reviews", ["review_after"])
    op.create_table(
        "gc_swept_blobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("digest", sa.String(length=200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("swept_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_gc_swept_blobs_digest", "gc_swept_blobs", ["digest"])
    op.create_table(
        "namespace_quotas",
        sa.Column("namespace", sa.String(length=255), nullable=False),
        sa.Column("limit_bytes", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("namespace"),
    )
    op.create_table(
        "notification_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("endpoint", sa.String(length=128), nullable=False),
        sa.Column("repository", sa.String(length=255), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_notification_events_endpoint", "notification_events", ["endpoint", "id"])


def downgrade() -> None:
    op.drop_table("notification_events")
    op.drop_table("namespace_quotas")
    op.drop_table("gc_swept_blobs")
    op.drop_table("gc_manifest_reviews")
    op.drop_table("gc_blob_reviews")

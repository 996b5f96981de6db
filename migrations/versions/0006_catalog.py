"""Catalog: the last pull of each tag or digest (catalog_pulls).

Revision ID: 0006_catalog
Revises: 0002_auth
Create Date: 2026-12-01 23:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_catalog"
down_revision = "0002_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalog_pulls",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("pulled_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["repository_id"], ["repositories.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("repository_id", "reference"),
    )


def downgrade() -> None:
    op.drop_table("catalog_pulls")

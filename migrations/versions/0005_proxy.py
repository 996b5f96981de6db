"""Pull-through cache: where a cached repository came from, when its tags were last checked.

Revision ID: 0005_proxy
Revises: 0006_catalog
Create Date: 2026-12-01 23:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_proxy"
down_revision = "0006_catalog"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "proxy_repositories",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("upstream", sa.String(length=64), nullable=False),
        sa.Column("remote_name", sa.String(length=255), nullable=False),
        sa.Column("last_pulled_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["repository_id"], ["repositories.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("repository_id"),
    )
    op.create_index("ix_proxy_repositories_pulled", "proxy_repositories", ["last_pulled_at"])
    op.create_table(
        "proxy_tags",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128).with_variant(sa.String(length=128, collation="C"), "postgresql"),
                  nullable=False),
        sa.Column("checked_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["repository_id"], ["repositories.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("repository_id", "name"),
    )


def downgrade() -> None:
    op.drop_table("proxy_tags")
    op.drop_index("ix_proxy_repositories_pulled", table_name="proxy_repositories")
    op.drop_table("proxy_repositories")

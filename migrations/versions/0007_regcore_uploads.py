"""Upload sessions know their client, so open sessions can be capped per client and per
repository (#13.10).

Revision ID: 0007_regcore_uploads
Revises: 0005_proxy
Create Date: 2026-12-01 23:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_regcore_uploads"
down_revision = "0005_proxy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("upload_sessions") as batch:
        batch.add_column(sa.Column("client", sa.String(length=255), nullable=True))
    op.create_index("ix_upload_sessions_repository", "upload_sessions", ["repository"])
    op.create_index("ix_upload_sessions_client", "upload_sessions", ["client"])


def downgrade() -> None:
    op.drop_index("ix_upload_sessions_client", table_name="upload_sessions")
    op.drop_index("ix_upload_sessions_repository", table_name="upload_sessions")
    with op.batch_alter_table("upload_sessions") as batch:
        batch.drop_column("client")

"""Upload sessions say whether their staging area was made: on the filesystem driver with
SQLite a session opened by POST is only its row until bytes are appended (PROFILE 37), so a
missing staging area must be told apart: empty (not made yet) or lost. Existing sessions all
had theirs made at POST: the default is true.

Revision ID: 0008_upload_staged
Revises: 0003_lifecycle
Create Date: 2026-12-04 19:10:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_upload_staged"
down_revision = "0003_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("upload_sessions") as batch:
        batch.add_column(sa.Column("staged", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("upload_sessions") as batch:
        batch.drop_column("staged")

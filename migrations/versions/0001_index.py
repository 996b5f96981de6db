"""Index schema: repositories, blobs, links, manifests, references, tags, uploads.

Revision ID: 0001_index
Revises: 
Create Date: 2026-11-28 08:44:30.070209
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0001_index'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('blobs',
    sa.Column('digest', sa.String(length=200), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('digest')
    )
    op.create_table('repositories',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=255).with_variant(sa.String(length=255, collation='C'), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('upload_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('repository', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('upload_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_upload_sessions_updated', ['updated_at'], unique=False)

    op.create_table('manifests',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('repository_id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=200), nullable=False),
    sa.Column('media_type', sa.String(length=255), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('artifact_type', sa.String(length=255), nullable=True),
    sa.Column('subject_digest', sa.String(length=200), nullable=True),
    sa.Column('annotations', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('repository_id', 'digest', name='uq_manifests_repository_digest')
    )
    with op.batch_alter_table('manifests', schema=None) as batch_op:
        batch_op.create_index('ix_manifests_digest', ['digest'], unique=False)
        batch_op.create_index('ix_manifests_subject', ['repository_id', 'subject_digest'], unique=False)

    op.create_table('repository_blobs',
    sa.Column('repository_id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['digest'], ['blobs.digest'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('repository_id', 'digest')
    )
    with op.batch_alter_table('repository_blobs', schema=None) as batch_op:
        batch_op.create_index('ix_repository_blobs_digest', ['digest'], unique=False)

    op.create_table('tags',
    sa.Column('repository_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128).with_variant(sa.String(length=128, collation='C'), 'postgresql'), nullable=False),
    sa.Column('manifest_digest', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('repository_id', 'name')
    )
    with op.batch_alter_table('tags', schema=None) as batch_op:
        batch_op.create_index('ix_tags_manifest', ['repository_id', 'manifest_digest'], unique=False)

    op.create_table('manifest_references',
    sa.Column('manifest_id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['manifest_id'], ['manifests.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('manifest_id', 'digest')
    )
    with op.batch_alter_table('manifest_references', schema=None) as batch_op:
        batch_op.create_index('ix_manifest_references_digest', ['digest'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('manifest_references', schema=None) as batch_op:
        batch_op.drop_index('ix_manifest_references_digest')

    op.drop_table('manifest_references')
    with op.batch_alter_table('tags', schema=None) as batch_op:
        batch_op.drop_index('ix_tags_manifest')

    op.drop_table('tags')
    with op.batch_alter_table('repository_blobs', schema=None) as batch_op:
        batch_op.drop_index('ix_repository_blobs_digest')

    op.drop_table('repository_blobs')
    with op.batch_alter_table('manifests', schema=None) as batch_op:
        batch_op.drop_index('ix_manifests_subject')
        batch_op.drop_index('ix_manifests_digest')

    op.drop_table('manifests')
    with op.batch_alter_table('upload_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_upload_sessions_updated')

    op.drop_table('upload_sessions')
    op.drop_table('repositories')
    op.drop_table('blobs')

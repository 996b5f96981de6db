"""The index on its own: schema matches the migrations, upserts."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from registry import state
from registry.app import create_app
from registry.index import Index, ManifestRecord
from registry.index.models import load_all_models
from tests.registry.oci_client import push_image


async def test_migrations_match_the_models(index_url):
    idx = Index(index_url)
    try:
        await idx.migrate()
        await idx.migrate()  # idempotent

        def diff(sync_conn):
            return compare_metadata(MigrationContext.configure(sync_conn), load_all_models().metadata)

        async with idx.engine.connect() as conn:
            changes = await conn.run_sync(diff)
        assert changes == [], f"models and migrations differ; add a revision: {changes}"
    finally:
        await idx.close()


async def test_put_manifest_is_idempotent_and_moves_tags(index_url):
    idx = Index(index_url)
    try:
        await idx.migrate()
        for digest in ("sha256:" + "1" * 64, "sha256:" + "1" * 64, "sha256:" + "2" * 64):
            await idx.put_manifest("r", ManifestRecord(digest=digest, media_type="m", size=1, tags=("t",)))
        assert await idx.resolve_tag("r", "t") == ("sha256:" + "2" * 64, "m", 1)
        assert await idx.list_tags("r", None) == ["t"]
        assert await idx.missing_manifests("r", ["sha256:" + "1" * 64, "sha256:" + "3" * 64]) == {"sha256:" + "3" * 64}
    finally:
        await idx.close()


async def test_replicas_migrating_at_once(index_url):
    import asyncio

    indexes = [Index(index_url) for _ in range(4)]
    try:
        await asyncio.gather(*(i.migrate() for i in indexes))
        assert await indexes[0].list_repositories(10) == []
    finally:
        for i in indexes:
            await i.close()

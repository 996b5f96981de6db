"""Helpers for the GC tests: an app with the worker driven by hand, storage and index probes."""
from __future__ import annotations

from sqlalchemy import func, select

from oci.digest import Digest
from registry import state
from registry.app import create_app
from registry.lifecycle import WORKER
from registry.index.lifecycle_models import BlobReview, ManifestReview


async def gc_app(aiohttp_client, config, **gc):
    """An app whose worker does not run on its own (tests call ``drain``)."""
    config.gc = {"enabled": False, "review_delay": 0, **gc}
    app = create_app(config)
    client = await aiohttp_client(app)
    return app, client


async def drain(app) -> int:
    return await app[WORKER].drain()


async def stored(app, digest: str) -> bool:
    return await app[state.STORAGE].stat(Digest.parse(digest)) is not None


async def queue_sizes(app) -> tuple[int, int]:
    def q(conn):
        return (conn.execute(select(func.count()).select_from(BlobReview)).scalar_one(),
                conn.execute(select(func.count()).select_from(ManifestReview)).scalar_one())

    return await app[state.INDEX].db.read(q)

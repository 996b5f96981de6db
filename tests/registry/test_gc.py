"""Online garbage collection: unreferenced, old blobs go; referenced or young ones stay."""
from __future__ import annotations

import os
import time

from oci.digest import Digest
from registry import state
from registry.app import create_app
from registry.gc import collect
from tests.registry.oci_client import blob, push_blob, push_image


def _age(config, digest: str, seconds: float) -> None:
    d = Digest.parse(digest)
    path = os.path.join(config.data_dir, "blobs", d.algorithm, d.hex[:2], d.hex)
    old = time.time() - seconds
    os.utime(path, (old, old))


async def test_gc_sweeps_only_old_unreferenced_blobs(aiohttp_client, config):
    app = create_app(config)
    client = await aiohttp_client(app)
    manifest_digest, _ = await push_image(client, "keep", "v1")
    kept_data, kept = blob()
    await push_blob(client, "keep", kept_data)  # linked, never in a manifest: still a name
    gone_data, gone = blob()
    await push_blob(client, "drop", gone_data)
    young_data, young = blob()
    await push_blob(client, "drop", young_data)
    for d in (gone, young):
        r = await client.delete(f"/v2/drop/blobs/{d}")
        assert r.status == 202
    for d in (manifest_digest, kept, gone):
        _age(config, d, 7200)

    report = await collect(app[state.INDEX], app[state.STORAGE], grace=3600, dry_run=True)
    assert report.swept == [gone]
    assert (await client.head(f"/v2/keep/blobs/{kept}")).status == 200

    report = await collect(app[state.INDEX], app[state.STORAGE], grace=3600)
    assert report.swept == [gone] and report.kept_young == 1
    assert await app[state.STORAGE].stat(Digest.parse(gone)) is None
    assert await app[state.STORAGE].stat(Digest.parse(young)) is not None
    r = await client.get("/v2/keep/manifests/v1")
    assert r.status == 200
    # Pushing the swept blob again works (its index row was forgotten with its bytes).
    await push_blob(client, "drop", gone_data)
    assert (await client.get(f"/v2/drop/blobs/{gone}")).status == 200


async def test_fsck_finds_names_without_bytes(aiohttp_client, config):
    from registry.fsck import check

    app = create_app(config)
    client = await aiohttp_client(app)
    manifest_digest, _ = await push_image(client, "f", "v1", layers=1)
    report = await check(app[state.INDEX], app[state.STORAGE])
    assert report.checked == 3 and report.missing == [] and report.wrong_size == []
    await app[state.STORAGE].delete(Digest.parse(manifest_digest))
    report = await check(app[state.INDEX], app[state.STORAGE])
    assert report.missing == [("f", manifest_digest, "manifest")]


async def test_scheduled_gc_inside_serve(aiohttp_client, config):
    import asyncio

    config.gc_interval = 0.2
    config.gc_grace = 60  # never 0: a push stores bytes a moment before it names them
    app = create_app(config)
    client = await aiohttp_client(app)
    data, digest = blob()
    await push_blob(client, "s", data)
    kept, kept_digest = blob()
    await push_blob(client, "s", kept)
    assert (await client.delete(f"/v2/s/blobs/{digest}")).status == 202
    _age(config, digest, 7200)
    for _ in range(50):
        await asyncio.sleep(0.1)
        if await app[state.STORAGE].stat(Digest.parse(digest)) is None:
            break
    assert await app[state.STORAGE].stat(Digest.parse(digest)) is None
    assert (await client.get(f"/v2/s/blobs/{kept_digest}")).status == 200

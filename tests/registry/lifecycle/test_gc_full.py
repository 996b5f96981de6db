"""The full ``gc`` (repairs) and ``fsck``: the same safety rule as the worker, whatever the grace."""
from __future__ import annotations

import asyncio
import json
import os
import time

from oci import mediatypes as mt
from oci.digest import Digest
from registry import state
from registry.app import create_app
from registry.fsck import check
from registry.gc import collect
from tests.registry.oci_client import blob, image_manifest, push_blob, push_image


def _age(config, digest: str, seconds: float) -> None:
    d = Digest.parse(digest)
    path = os.path.join(config.data_dir, "blobs", d.algorithm, d.hex[:2], d.hex)
    old = time.time() - seconds
    os.utime(path, (old, old))


async def test_gc_sweeps_only_old_blobs_no_manifest_names(aiohttp_client, config):
    app = create_app(config)
    client = await aiohttp_client(app)
    manifest_digest, raw = await push_image(client, "keep", "v1")
    named = [d["digest"] for d in json.loads(raw)["layers"]]
    linked_data, linked = blob()
    await push_blob(client, "keep", linked_data)  # linked, never in a manifest: garbage once old
    young_data, young = blob()
    await push_blob(client, "drop", young_data)
    for d in (manifest_digest, linked, *named):
        _age(config, d, 7200)

    report = await collect(app[state.INDEX], app[state.STORAGE], grace=3600, dry_run=True)
    assert report.swept == [linked]
    assert (await client.head(f"/v2/keep/blobs/{linked}")).status == 200

    report = await collect(app[state.INDEX], app[state.STORAGE], grace=3600)
    assert report.swept == [linked] and report.kept_young == 1
    assert await app[state.STORAGE].stat(Digest.parse(linked)) is None
    assert (await client.head(f"/v2/keep/blobs/{linked}")).status == 404  # its link went with it
    assert await app[state.STORAGE].stat(Digest.parse(young)) is not None
    assert (await client.get("/v2/keep/manifests/v1")).status == 200
    await push_blob(client, "keep", linked_data)  # pushing it again works
    assert (await client.get(f"/v2/keep/blobs/{linked}")).status == 200
    assert (await check(app[state.INDEX], app[state.STORAGE])).problems == 0


class _PausingStorage:
    """The real driver, except that the sweep's walk first runs ``before_walk`` (after the mark)."""

    def __init__(self, driver, before_walk) -> None:
        self._driver, self._before_walk = driver, before_walk

    def __getattr__(self, name):
        return getattr(self._driver, name)

    async def iter_blobs(self):
        await self._before_walk()
        async for info in self._driver.iter_blobs():
            yield info


async def test_push_landing_between_mark_and_sweep_keeps_its_layer(aiohttp_client, config):
    """Issue #13 item 8: the upload refreshes the blob's mtime, gc (grace 0) starts and marks,
    then the link and the manifest are written. The acknowledged manifest must keep its layer."""
    app = create_app(config)
    client = await aiohttp_client(app)
    idx = app[state.INDEX]
    cfg = json.dumps({"os": "linux", "architecture": "amd64"}).encode()
    layer, layer_digest = blob(5000)
    await push_blob(client, "r", cfg)
    await push_blob(client, "r", layer)
    raw = image_manifest(cfg, [layer])
    digest = str(Digest.of(raw))
    headers = {"Content-Type": mt.OCI_MANIFEST}
    assert (await client.put("/v2/r/manifests/v1", data=raw, headers=headers)).status == 201
    # The image becomes garbage: manifest deleted, layer unlinked.
    assert (await client.delete(f"/v2/r/manifests/{digest}")).status == 202
    assert (await client.delete(f"/v2/r/blobs/{layer_digest}")).status == 202

    # A client pushes the layer again; its link waits until gc has marked.
    committed, may_link = asyncio.Event(), asyncio.Event()
    original = idx.complete_upload

    async def gated_complete_upload(*args, **kwargs):
        committed.set()
        await may_link.wait()
        return await original(*args, **kwargs)

    idx.complete_upload = gated_complete_upload
    r = await client.post("/v2/r/blobs/uploads/")
    location = r.headers["Location"]
    r = await client.patch(location, data=layer, headers={"Content-Type": "application/octet-stream"})
    location = r.headers["Location"]
    upload = asyncio.create_task(client.put(f"{location}?digest={layer_digest}"))
    await asyncio.wait_for(committed.wait(), 10)
    await asyncio.sleep(0.05)  # the blob's mtime is now before gc's cutoff (grace 0)
    acknowledged = []

    async def push_rest():
        may_link.set()
        assert (await upload).status == 201
        r = await client.put("/v2/r/manifests/v1", data=raw, headers=headers)
        if r.status == 201:
            acknowledged.append(digest)

    await collect(idx, _PausingStorage(app[state.STORAGE], push_rest), grace=0)
    assert acknowledged == [digest]
    r = await client.get(f"/v2/r/blobs/{layer_digest}")
    assert r.status == 200 and await r.read() == layer, "gc deleted a layer of an acknowledged manifest"
    assert (await client.get("/v2/r/manifests/v1")).status == 200


async def test_fsck_finds_names_without_bytes_and_orphaned_bytes(aiohttp_client, config):
    app = create_app(config)
    client = await aiohttp_client(app)
    manifest_digest, _ = await push_image(client, "f", "v1", layers=1)
    report = await check(app[state.INDEX], app[state.STORAGE])
    assert report.checked == 3 and report.problems == 0
    await app[state.STORAGE].delete(Digest.parse(manifest_digest))
    orphan = b"bytes nobody named"
    await app[state.STORAGE].put(Digest.of(orphan), orphan)
    report = await check(app[state.INDEX], app[state.STORAGE])
    assert report.missing == [("f", manifest_digest, "manifest")]
    assert report.orphans == [(str(Digest.of(orphan)), len(orphan))]
    # The full gc removes the orphan (no name, whatever its age with grace 0).
    await collect(app[state.INDEX], app[state.STORAGE], grace=0)
    assert (await check(app[state.INDEX], app[state.STORAGE])).orphans == []


async def test_fsck_reports_a_blob_under_an_interrupted_sweep_as_pending_not_missing(aiohttp_client, config):
    """A sweep removes the bytes, then the rows; a stop in between leaves a name without bytes
    that the next worker removes. fsck tells that state from real loss."""
    from sqlalchemy import update

    from registry.index.lifecycle_models import BlobReview

    app = create_app(config)
    client = await aiohttp_client(app)
    condemned, lost = b"condemned layer", b"lost layer"
    for data in (condemned, lost):
        await push_blob(client, "p", data)
    # An upload with no manifest queues a review; the worker's claim would set sweeping_at like this.
    stmt = update(BlobReview).where(BlobReview.digest == str(Digest.of(condemned))).values(sweeping_at=time.time())
    await app[state.INDEX].db.write(lambda conn: conn.execute(stmt))
    for data in (condemned, lost):
        await app[state.STORAGE].delete(Digest.of(data))
    report = await check(app[state.INDEX], app[state.STORAGE])
    assert report.pending_sweep == [("p", str(Digest.of(condemned)), "blob")]
    assert report.missing == [("p", str(Digest.of(lost)), "blob")]
    assert report.problems == 1

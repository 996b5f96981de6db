"""The online GC worker: what a push, a delete, a tag move queue, and what a review removes."""
from __future__ import annotations

import json

from oci.digest import Digest
from registry import state
from registry.lifecycle import WORKER
from tests.registry.lifecycle.gc_support import drain, gc_app, queue_sizes, stored
from tests.registry.oci_client import blob, image_manifest, push_blob, push_image


async def test_deleted_manifest_frees_only_what_nothing_else_names(aiohttp_client, config):
    app, client = await gc_app(aiohttp_client, config)
    shared, shared_digest = blob()
    only, only_digest = blob()
    cfg = json.dumps({"os": "linux", "architecture": "amd64"}).encode()
    for repo in ("a", "b"):
        await push_blob(client, repo, cfg)
        await push_blob(client, repo, shared)
    await push_blob(client, "a", only)
    raw_a = image_manifest(cfg, [shared, only])
    raw_b = image_manifest(cfg, [shared])
    assert (await client.put("/v2/a/manifests/v1", data=raw_a, headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})).status == 201
    assert (await client.put("/v2/b/manifests/v1", data=raw_b, headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})).status == 201
    await drain(app)  # the uploads' reviews: everything is named by a manifest, nothing goes
    assert await queue_sizes(app) == (0, 0)
    digest_a = str(Digest.of(raw_a))
    assert (await client.delete(f"/v2/a/manifests/{digest_a}")).status == 202
    assert (await queue_sizes(app))[0] == 4  # config, two layers, the manifest's own bytes
    await drain(app)
    assert not await stored(app, only_digest) and not await stored(app, digest_a)
    assert await stored(app, shared_digest)
    assert (await client.get("/v2/b/manifests/v1")).status == 200
    assert (await client.get(f"/v2/b/blobs/{shared_digest}")).status == 200
    assert (await client.head(f"/v2/a/blobs/{only_digest}")).status == 404
    assert await queue_sizes(app) == (0, 0)
    counters = app[WORKER].counters
    assert counters.blobs_swept == 2 and counters.bytes_freed == len(only) + len(raw_a)


async def test_unused_upload_goes_after_review_delay_only(aiohttp_client, config):
    app, client = await gc_app(aiohttp_client, config, review_delay="1h")
    data, digest = blob()
    await push_blob(client, "u", data)
    await drain(app)
    assert await stored(app, digest)  # not due for an hour
    app[state.INDEX].lifecycle.gc = app[state.INDEX].lifecycle.gc.__class__(review_delay=0)
    data2, digest2 = blob()
    await push_blob(client, "u", data2)
    await drain(app)
    assert not await stored(app, digest2)
    assert (await client.head(f"/v2/u/blobs/{digest2}")).status == 404
    # Pushing it again works: the sweep forgot its rows with its bytes.
    await push_blob(client, "u", data2)
    assert (await client.get(f"/v2/u/blobs/{digest2}")).status == 200


async def test_untagged_manifests_kept_unless_untagged_after(aiohttp_client, config):
    app, client = await gc_app(aiohttp_client, config)
    old, _ = await push_image(client, "t", "latest")
    await push_image(client, "t", "latest")  # moves the tag: old is untagged
    await drain(app)
    assert (await client.get(f"/v2/t/manifests/{old}")).status == 200  # untagged_after 0 keeps it

    app2, client2 = await gc_app(aiohttp_client, config.__class__(
        data_dir=config.data_dir + "2", database_url=config.database_url.replace("index.db", "index2.db")
        if "sqlite" in config.database_url else config.database_url).finish(), untagged_after=0.001)
    old, raw = await push_image(client2, "t2", "latest")
    layers = [d["digest"] for d in json.loads(raw)["layers"]]
    new, _ = await push_image(client2, "t2", "latest")
    await drain(app2)
    assert (await client2.get(f"/v2/t2/manifests/{old}")).status == 404
    assert (await client2.get(f"/v2/t2/manifests/{new}")).status == 200
    assert not any([await stored(app2, d) for d in layers])
    assert (await client2.get("/v2/t2/tags/list")).status == 200


async def test_a_push_naming_a_condemned_blob_is_refused(aiohttp_client, config):
    """The worker condemned the layer (claim committed) but has not deleted it yet: a manifest
    naming it must fail rather than be acknowledged and then lose the layer."""
    from registry.lifecycle import reviews

    app, client = await gc_app(aiohttp_client, config)
    cfg, layer = b'{"os":"linux"}', b"layer-bytes" * 10
    await push_blob(client, "c", cfg)
    await push_blob(client, "c", layer)
    layer_digest = str(Digest.of(layer))
    import time

    def claim(conn):
        reviews.take_write_lock(conn)
        return reviews.claim_blob(conn, layer_digest, time.time())

    assert await app[state.INDEX].db.write(claim) == len(layer)
    raw = image_manifest(cfg, [layer])
    r = await client.put("/v2/c/manifests/v1", data=raw, headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status == 404 and (await r.json())["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    await app[WORKER].sweep(layer_digest, len(layer))  # the worker finishes its sweep
    assert not await stored(app, layer_digest)
    await drain(app)  # (the config, unused now, goes too: review_delay is 0)
    # The client pushes its blobs again and then the manifest: it works.
    await push_blob(client, "c", cfg)
    await push_blob(client, "c", layer)
    r = await client.put("/v2/c/manifests/v1", data=raw, headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status == 201
    await drain(app)
    assert await stored(app, layer_digest)

"""Many concurrent pushes that reuse blobs and move tags while the worker runs with no grace.

Afterwards every acknowledged manifest that is still there has all its blobs, byte for byte;
once the queue is drained every blob no manifest names is gone, and fsck is clean.
"""
from __future__ import annotations

import asyncio
import json
import random

from oci import mediatypes as mt
from oci.digest import Digest
from registry import state
from registry.app import create_app
from registry.fsck import check
from registry.lifecycle import WORKER
from tests.registry.lifecycle.gc_support import queue_sizes

PUSHERS, ROUNDS = 8, 8
HEADERS = {"Content-Type": mt.OCI_MANIFEST}


async def _push_blob(client, repo: str, data: bytes) -> bool:
    digest = str(Digest.of(data))
    if (await client.head(f"/v2/{repo}/blobs/{digest}")).status == 200:
        return True  # what docker does: skip what the repository already has
    r = await client.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", data=data)
    return r.status == 201


async def _push_image(client, repo: str, tag: str, blobs: list[bytes]) -> str | None:
    """The whole push, retried as a client would when the registry refuses a part of it."""
    cfg, layers = blobs[0], blobs[1:]
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
           "config": {"mediaType": mt.OCI_CONFIG, "digest": str(Digest.of(cfg)), "size": len(cfg)},
           "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": str(Digest.of(l)), "size": len(l)} for l in layers]}
    raw = json.dumps(doc).encode()
    for _ in range(20):
        if all([await _push_blob(client, repo, b) for b in blobs]):
            r = await client.put(f"/v2/{repo}/manifests/{tag}", data=raw, headers=HEADERS)
            if r.status == 201:
                return str(Digest.of(raw))
            assert r.status in (404, 503), await r.text()  # refused: a blob was being collected
        await asyncio.sleep(0.01)
    return None


async def test_concurrent_pushes_against_a_graceless_worker(aiohttp_client, config):
    config.gc = {"enabled": True, "review_delay": 0, "untagged_after": "10ms"}
    app = create_app(config)
    client = await aiohttp_client(app)
    worker = app[WORKER]
    worker.idle_sleep = 0.005
    rng = random.Random(16)
    configs = [json.dumps({"os": "linux", "architecture": "amd64", "n": i}).encode() for i in range(2)]
    pool = [rng.randbytes(300 + i) for i in range(8)]
    acknowledged: list[tuple[str, str, list[bytes]]] = []
    failed = 0

    async def pusher(n: int) -> None:
        nonlocal failed
        for i in range(ROUNDS):
            repo = f"race/{'ab'[n % 2]}"
            blobs = [rng.choice(configs), *rng.sample(pool, 2)]
            digest = await _push_image(client, repo, f"t{rng.randrange(3)}", blobs)
            if digest is None:
                failed += 1
                continue
            acknowledged.append((repo, digest, blobs))
            if rng.random() < 0.3:
                await client.delete(f"/v2/{repo}/manifests/{digest}")

    await asyncio.gather(*(pusher(n) for n in range(PUSHERS)))
    assert failed <= PUSHERS * ROUNDS // 4, f"{failed} pushes never got through"
    assert worker.counters.blobs_swept > 0, "the worker swept nothing while the pushes ran"

    present = 0
    for repo, digest, blobs in acknowledged:
        if (await client.head(f"/v2/{repo}/manifests/{digest}")).status != 200:
            continue  # deleted since, by the test or as an untagged manifest: legitimate
        present += 1
        for data in blobs:
            r = await client.get(f"/v2/{repo}/blobs/{Digest.of(data)}")
            assert r.status == 200 and await r.read() == data, f"{repo}@{digest} lost a blob"
    assert present > 0
    print(f"\nrace: {len(acknowledged)} acknowledged, {present} present, {failed} failed, {worker.counters}")

    for _ in range(500):  # let the worker empty its queue (everything is due: no grace)
        if await queue_sizes(app) == (0, 0):
            break
        await asyncio.sleep(0.02)
    assert await queue_sizes(app) == (0, 0)
    live = await app[state.INDEX].referenced_digests()
    stored = {str(info.digest) async for info in app[state.STORAGE].iter_blobs()}
    assert stored == live, f"unreferenced blobs left: {sorted(stored - live)[:3]}; missing: {sorted(live - stored)[:3]}"
    report = await check(app[state.INDEX], app[state.STORAGE])
    assert report.problems == 0, report

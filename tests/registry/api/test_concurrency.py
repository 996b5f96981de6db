"""Many clients pushing the same blob, manifest and tag at once: all succeed, one state."""
from __future__ import annotations

import asyncio
import json

from oci import mediatypes as mt
from oci.digest import Digest
from tests.registry.oci_client import blob, image_manifest


async def test_concurrent_pushes_of_the_same_content(client, config):
    config_blob = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    layer, layer_digest = blob(300_000)
    raw = image_manifest(config_blob, [layer])
    digest = str(Digest.of(raw))

    async def push_one(i: int) -> None:
        for data in (config_blob, layer):
            if i % 2:  # half monolithic, half POST + PATCH + PUT
                r = await client.post(f"/v2/conc/blobs/uploads/?digest={Digest.of(data)}", data=data)
                assert r.status == 201, await r.text()
            else:
                r = await client.post("/v2/conc/blobs/uploads/")
                assert r.status == 202, await r.text()
                r = await client.patch(r.headers["Location"], data=data)
                assert r.status == 202, await r.text()
                r = await client.put(f"{r.headers['Location']}?digest={Digest.of(data)}")
                assert r.status == 201, await r.text()
        r = await client.put("/v2/conc/manifests/latest", data=raw, headers={"Content-Type": mt.OCI_MANIFEST})
        assert r.status == 201, await r.text()
        assert r.headers["Docker-Content-Digest"] == digest

    await asyncio.gather(*(push_one(i) for i in range(20)))
    r = await client.get("/v2/conc/tags/list")
    assert (await r.json())["tags"] == ["latest"]
    r = await client.get("/v2/conc/manifests/latest")
    assert await r.read() == raw
    r = await client.get(f"/v2/conc/blobs/{layer_digest}")
    assert await r.read() == layer
    r = await client.get("/v2/_catalog")
    assert (await r.json())["repositories"] == ["conc"]
    # No staging areas left behind.
    from pathlib import Path

    assert list((Path(config.data_dir) / "uploads").iterdir()) == []

"""A tiny registry client for the API tests: push blobs and manifests in one call each."""
from __future__ import annotations

import json
import os
from typing import Any

from oci import mediatypes as mt
from oci.digest import Digest


def blob(size: int = 1000) -> tuple[bytes, str]:
    data = os.urandom(size)
    return data, str(Digest.of(data))


def config_blob() -> tuple[bytes, str]:
    """A unique, valid image config (pushes check a config's JSON types)."""
    data = json.dumps({"architecture": "amd64", "os": "linux", "author": os.urandom(8).hex()}).encode()
    return data, str(Digest.of(data))


async def push_blob(client, name: str, data: bytes) -> str:
    digest = str(Digest.of(data))
    r = await client.post(f"/v2/{name}/blobs/uploads/?digest={digest}", data=data,
                          headers={"Content-Type": "application/octet-stream"})
    assert r.status == 201, await r.text()
    return digest


def image_manifest(config: bytes, layers: list[bytes], media_type: str = mt.OCI_MANIFEST, **extra: Any) -> bytes:
    cfg_type = mt.OCI_CONFIG if media_type == mt.OCI_MANIFEST else mt.DOCKER_CONFIG
    layer_type = mt.OCI_LAYER_GZIP if media_type == mt.OCI_MANIFEST else mt.DOCKER_LAYER_GZIP
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": extra.pop("config_media_type", cfg_type), "digest": str(Digest.of(config)), "size": len(config)},
        "layers": [{"mediaType": layer_type, "digest": str(Digest.of(l)), "size": len(l)} for l in layers],
    }
    doc.update(extra)
    return json.dumps(doc, indent=1).encode()


async def push_image(client, name: str, tag: str | None = "latest", layers: int = 2, media_type: str = mt.OCI_MANIFEST,
                     **extra: Any) -> tuple[str, bytes]:
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    layer_data = [os.urandom(200 + i) for i in range(layers)]
    await push_blob(client, name, config)
    for l in layer_data:
        await push_blob(client, name, l)
    raw = image_manifest(config, layer_data, media_type, **extra)
    digest = str(Digest.of(raw))
    r = await client.put(f"/v2/{name}/manifests/{tag or digest}", data=raw, headers={"Content-Type": media_type})
    assert r.status == 201, await r.text()
    assert r.headers["Docker-Content-Digest"] == digest
    return digest, raw

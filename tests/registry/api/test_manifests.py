"""Manifests: every media type, GET/HEAD/PUT/DELETE by tag and digest, checks and limits."""
from __future__ import annotations

import hashlib
import json

import pytest

from oci import mediatypes as mt
from oci.digest import Digest
from registry.app import create_app
from tests.registry.oci_client import blob, config_blob, image_manifest, push_blob, push_image


@pytest.mark.parametrize("media_type", [mt.OCI_MANIFEST, mt.DOCKER_MANIFEST])
async def test_image_manifest_roundtrip_by_tag_and_digest(client, media_type):
    digest, raw = await push_image(client, "img/app", "v1", media_type=media_type)
    for ref in ("v1", digest):
        r = await client.get(f"/v2/img/app/manifests/{ref}", headers={"Accept": media_type})
        assert r.status == 200
        assert await r.read() == raw
        assert r.headers["Content-Type"] == media_type
        assert r.headers["Docker-Content-Digest"] == digest
        r = await client.head(f"/v2/img/app/manifests/{ref}")
        assert r.status == 200
        assert int(r.headers["Content-Length"]) == len(raw)
        assert r.headers["Docker-Content-Digest"] == digest
        assert await r.read() == b""


@pytest.mark.parametrize("index_type,child_type", [(mt.OCI_INDEX, mt.OCI_MANIFEST), (mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST)])
async def test_index_requires_children_and_negotiates(client, index_type, child_type):
    child, child_raw = await push_image(client, "multi", None, media_type=child_type)
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": index_type,
        "manifests": [{"mediaType": child_type, "digest": child, "size": len(child_raw),
                       "platform": {"os": "linux", "architecture": "amd64"}}],
    }).encode()
    missing = json.dumps({
        "schemaVersion": 2, "mediaType": index_type,
        "manifests": [{"mediaType": child_type, "digest": str(Digest.of(b"nope")), "size": 4}],
    }).encode()
    r = await client.put("/v2/multi/manifests/bad", data=missing, headers={"Content-Type": index_type})
    assert r.status in (400, 404)
    assert (await r.json())["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    r = await client.put("/v2/multi/manifests/latest", data=index, headers={"Content-Type": index_type})
    assert r.status == 201, await r.text()
    idx_digest = r.headers["Docker-Content-Digest"]
    # A client that accepts indexes gets the index.
    r = await client.get("/v2/multi/manifests/latest", headers={"Accept": f"{index_type}, {child_type}"})
    assert r.headers["Docker-Content-Digest"] == idx_digest
    # No Accept at all: the stored type, as is.
    r = await client.get("/v2/multi/manifests/latest")
    assert r.headers["Docker-Content-Digest"] == idx_digest
    # A client that only reads image manifests gets the linux/amd64 one (by tag).
    r = await client.get("/v2/multi/manifests/latest", headers={"Accept": child_type})
    assert r.status == 200
    assert r.headers["Docker-Content-Digest"] == child
    assert await r.read() == child_raw


async def test_artifact_manifest_with_empty_config_and_subject(client):
    subject, subject_raw = await push_image(client, "art", "v1")
    layer, _ = blob(50)
    layer_digest = await push_blob(client, "art", layer)
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom",
        "config": {"mediaType": mt.OCI_EMPTY, "digest": mt.EMPTY_JSON_DIGEST, "size": 2},
        "layers": [{"mediaType": "application/json", "digest": layer_digest, "size": len(layer)}],
        "subject": {"mediaType": mt.OCI_MANIFEST, "digest": subject, "size": len(subject_raw)},
        "annotations": {"org.example": "yes"},
    }
    raw = json.dumps(doc).encode()
    digest = str(Digest.of(raw))
    r = await client.put(f"/v2/art/manifests/{digest}", data=raw, headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 201, await r.text()
    assert r.headers["OCI-Subject"] == subject
    r = await client.get(f"/v2/art/blobs/{mt.EMPTY_JSON_DIGEST}")
    assert await r.read() == b"{}"
    r = await client.get(f"/v2/art/referrers/{subject}")
    assert r.status == 200
    assert r.headers["Content-Type"] == mt.OCI_INDEX
    body = await r.json()
    assert body["mediaType"] == mt.OCI_INDEX and body["schemaVersion"] == 2
    assert body["manifests"] == [{
        "mediaType": mt.OCI_MANIFEST, "digest": digest, "size": len(raw),
        "artifactType": "application/vnd.example.sbom", "annotations": {"org.example": "yes"},
    }]


async def test_put_by_digest_verifies(client):
    config, _ = config_blob()
    await push_blob(client, "v", config)
    raw = image_manifest(config, [])
    r = await client.put(f"/v2/v/manifests/{Digest.of(b'x')}", data=raw, headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 400
    assert (await r.json())["errors"][0]["code"] == "DIGEST_INVALID"
    sha512 = "sha512:" + hashlib.sha512(raw).hexdigest()
    r = await client.put(f"/v2/v/manifests/{sha512}", data=raw, headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 201, await r.text()
    assert r.headers["Docker-Content-Digest"] == sha512
    r = await client.get(f"/v2/v/manifests/{sha512}")
    assert await r.read() == raw


async def test_digest_is_of_the_exact_bytes(client):
    config, _ = config_blob()
    await push_blob(client, "exact", config)
    raw = b"  " + image_manifest(config, []) + b"\n\n"
    r = await client.put("/v2/exact/manifests/t", data=raw, headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 201
    assert r.headers["Docker-Content-Digest"] == str(Digest.of(raw))
    r = await client.get("/v2/exact/manifests/t")
    assert await r.read() == raw


async def test_missing_blob_is_manifest_blob_unknown(client):
    config, _ = config_blob()
    await push_blob(client, "m", config)
    layer, _ = blob(10)
    raw = image_manifest(config, [layer])
    r = await client.put("/v2/m/manifests/t", data=raw, headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status in (400, 404)
    body = await r.json()
    assert body["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    assert body["errors"][0]["detail"]["digest"] == str(Digest.of(layer))
    # A blob pushed to another repository does not count.
    await push_blob(client, "other", layer)
    r = await client.put("/v2/m/manifests/t", data=raw, headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status in (400, 404)


@pytest.mark.parametrize(
    "body,content_type,needle",
    [
        (b"not json", mt.OCI_MANIFEST, "JSON"),
        (json.dumps({"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}).encode(), mt.DOCKER_SCHEMA1_SIGNED, "schema1"),
        (json.dumps({"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}).encode(), "application/json", "schema1"),
        (json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": {}}).encode(), mt.OCI_MANIFEST, "config"),
        (json.dumps([1, 2]).encode(), mt.OCI_MANIFEST, "object"),
    ],
)
async def test_invalid_manifests(client, body, content_type, needle):
    r = await client.put("/v2/bad/manifests/t", data=body, headers={"Content-Type": content_type})
    assert r.status == 400
    err = (await r.json())["errors"][0]
    assert err["code"] == "MANIFEST_INVALID"
    assert needle.lower() in json.dumps(err).lower()
    r = await client.get("/v2/_catalog")
    assert "bad" not in (await r.json())["repositories"]


async def test_manifest_size_limit(aiohttp_client, config):
    config.max_manifest_size = 1000
    client = await aiohttp_client(create_app(config))
    big = b"{" + b" " * 2000 + b"}"
    r = await client.put("/v2/big/manifests/t", data=big, headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 413
    assert (await r.json())["errors"][0]["code"] == "MANIFEST_INVALID"

    async def stream():  # no Content-Length: the cap applies while reading
        for _ in range(100):
            yield b" " * 100

    r = await client.put("/v2/big/manifests/t", data=stream(), headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 413


async def test_invalid_tag_and_name_on_put(client):
    r = await client.put("/v2/x/manifests/-bad", data=b"{}", headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 400
    assert (await r.json())["errors"][0]["code"] == "TAG_INVALID"
    r = await client.put("/v2/X/manifests/ok", data=b"{}", headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 400
    assert (await r.json())["errors"][0]["code"] == "NAME_INVALID"


async def test_manifest_unknown(client):
    await push_image(client, "known", "v1")
    for ref in ("nope", str(Digest.of(b"zz"))):
        r = await client.get(f"/v2/known/manifests/{ref}")
        assert r.status == 404
        assert (await r.json())["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    r = await client.head("/v2/known/manifests/nope")
    assert r.status == 404


async def test_retag_moves_the_tag(client):
    d1, _ = await push_image(client, "rt", "latest")
    d2, _ = await push_image(client, "rt", "latest")
    assert d1 != d2
    r = await client.get("/v2/rt/manifests/latest")
    assert r.headers["Docker-Content-Digest"] == d2
    r = await client.get(f"/v2/rt/manifests/{d1}")
    assert r.status == 200


async def test_delete_manifest_by_digest_and_tag(client):
    digest, _ = await push_image(client, "del", "a")
    r = await client.put(f"/v2/del/manifests/b", data=(await (await client.get("/v2/del/manifests/a")).read()),
                         headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 201
    r = await client.delete("/v2/del/manifests/a")  # deleting a tag leaves the manifest
    assert r.status == 202
    assert (await client.get("/v2/del/manifests/a")).status == 404
    assert (await client.get(f"/v2/del/manifests/{digest}")).status == 200
    r = await client.delete(f"/v2/del/manifests/{digest}")  # deleting the manifest drops its tags
    assert r.status == 202
    assert (await client.get(f"/v2/del/manifests/{digest}")).status == 404
    assert (await client.get("/v2/del/manifests/b")).status == 404
    r = await client.get("/v2/del/tags/list")
    assert (await r.json())["tags"] == []
    r = await client.delete(f"/v2/del/manifests/{digest}")
    assert r.status == 404
    assert (await r.json())["errors"][0]["code"] == "MANIFEST_UNKNOWN"


async def test_manifest_size_limit_can_be_raised(aiohttp_client, config):
    config.max_manifest_size = 8 << 20
    client = await aiohttp_client(create_app(config))
    cfg, _ = config_blob()
    await push_blob(client, "large", cfg)
    raw = image_manifest(cfg, [], annotations={"pad": "x" * (5 << 20)})
    r = await client.put("/v2/large/manifests/t", data=raw, headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 201, (await r.text())[:300]

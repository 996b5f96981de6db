"""Issue #13.2: a manifest must not pull another repository's blob into its own.

The attack: with push rights on bob/* only, push a manifest whose config descriptor carries
`urls` and the digest of team-a's private config. Before the fix the reference check skipped
descriptors with `urls` and the catalog read configs from storage by digest alone, so
/api/v1/... and /ui/... showed team-a's `Env SECRET=...`.
"""
from __future__ import annotations

import json

import pytest

from oci import mediatypes as mt
from oci.digest import Digest
from registry import state
from registry.index import ManifestRecord
from tests.registry.auth_helpers import Authed, auth_config, basic, start
from tests.registry.oci_client import push_blob

SECRET = b"SECRET=hunter2-do-not-leak"


async def _push_private(client, name: str = "team-a/private") -> tuple[str, int]:
    """team-a's image whose config holds a secret; returns (config digest, size)."""
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Env": [SECRET.decode()]},
                      "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    digest = await push_blob(client, name, cfg)
    layer = b"layer-bytes" * 10
    await push_blob(client, name, layer)
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
           "config": {"mediaType": mt.OCI_CONFIG, "digest": digest, "size": len(cfg)},
           "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": str(Digest.of(layer)), "size": len(layer)}]}
    r = await client.put(f"/v2/{name}/manifests/v1", data=json.dumps(doc).encode(),
                         headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 201, await r.text()
    return digest, len(cfg)


def _leaky_manifest(config_digest: str, size: int, config_urls=("https://example.invalid/c",),
                    layers: list | None = None) -> bytes:
    config = {"mediaType": mt.OCI_CONFIG, "digest": config_digest, "size": size}
    if config_urls:
        config["urls"] = list(config_urls)
    return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config,
                       "layers": layers or []}).encode()


async def _assert_not_shown(client, headers=None) -> None:
    for path in ("/api/v1/repositories/bob/x/manifests/leak", "/ui/r/bob/x/-/manifest/leak", "/ui/r/bob/x",
                 "/api/v1/repositories/bob/x/tags"):
        r = await client.get(path, headers=headers or {})
        assert r.status < 500, (path, r.status)
        assert SECRET not in await r.read(), path


async def _put(client, name: str, raw: bytes, tag: str = "leak"):
    return await client.put(f"/v2/{name}/manifests/{tag}", data=raw, headers={"Content-Type": mt.OCI_MANIFEST})


async def test_config_descriptor_with_urls_is_refused_with_auth(aiohttp_client, tmp_path):
    app, client = await start(aiohttp_client, auth_config(tmp_path, mode="basic"))
    alice = Authed(client, basic("alice", "alicepw"))
    bob = Authed(client, basic("bob", "bobpw"))
    digest, size = await _push_private(alice)
    r = await _put(bob, "bob/x", _leaky_manifest(digest, size))
    assert r.status == 400, await r.text()
    assert (await r.json())["errors"][0]["code"] == "MANIFEST_INVALID"
    await _assert_not_shown(client, basic("bob", "bobpw"))


async def test_config_descriptor_with_urls_is_refused_without_auth(client):
    digest, size = await _push_private(client)
    r = await _put(client, "bob/x", _leaky_manifest(digest, size))
    assert r.status == 400, await r.text()
    body = await r.json()
    assert body["errors"][0]["code"] == "MANIFEST_INVALID" and "config" in body["errors"][0]["message"]
    await _assert_not_shown(client)
    r = await client.get(f"/v2/bob/x/blobs/{digest}")
    assert r.status == 404


@pytest.mark.parametrize("media_type", [mt.OCI_LAYER_GZIP, mt.OCI_LAYER, mt.OCI_LAYER_ZSTD, "application/x-other"])
async def test_urls_on_a_distributable_layer_are_refused(client, media_type):
    digest, size = await _push_private(client)
    cfg = await push_blob(client, "bob/x", b"{}")
    layers = [{"mediaType": media_type, "digest": digest, "size": size, "urls": ["https://example.invalid/l"]}]
    raw = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                      "config": {"mediaType": mt.OCI_CONFIG, "digest": cfg, "size": 2}, "layers": layers}).encode()
    r = await _put(client, "bob/x", raw)
    assert r.status == 400, await r.text()
    assert "layers[0].urls" in (await r.json())["errors"][0]["message"]


async def test_urls_on_index_children_and_subject_are_refused(client):
    digest, size = await _push_private(client)
    desc = {"mediaType": mt.OCI_MANIFEST, "digest": digest, "size": size, "urls": ["https://example.invalid/m"]}
    r = await client.put("/v2/bob/x/manifests/leak", data=json.dumps(
        {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [desc]}).encode(),
        headers={"Content-Type": mt.OCI_INDEX})
    assert r.status == 400, await r.text()


async def test_foreign_layers_of_nondistributable_types_still_push(client):
    cfg_raw = json.dumps({"architecture": "amd64", "os": "windows", "rootfs": {"type": "layers"}}).encode()
    cfg = await push_blob(client, "win/x", cfg_raw)
    foreign = "sha256:" + "ab" * 32
    for media_type in (mt.DOCKER_LAYER_FOREIGN, mt.OCI_LAYER_NONDIST_GZIP):
        layers = [{"mediaType": media_type, "digest": foreign, "size": 10, "urls": ["https://example.invalid/l"]}]
        manifest_type = mt.DOCKER_MANIFEST if media_type == mt.DOCKER_LAYER_FOREIGN else mt.OCI_MANIFEST
        config_type = mt.DOCKER_CONFIG if media_type == mt.DOCKER_LAYER_FOREIGN else mt.OCI_CONFIG
        raw = json.dumps({"schemaVersion": 2, "mediaType": manifest_type,
                          "config": {"mediaType": config_type, "digest": cfg, "size": len(cfg_raw)},
                          "layers": layers}).encode()
        r = await client.put("/v2/win/x/manifests/v1", data=raw, headers={"Content-Type": manifest_type})
        assert r.status == 201, await r.text()
    # and a foreign layer is never served from this registry's storage
    r = await client.get(f"/v2/win/x/blobs/{foreign}")
    assert r.status == 404


async def test_catalog_reads_configs_through_the_repository_links(client):
    """Rows written before the fix (or by any other path) still must not leak: the catalog reads a
    config only when the repository links it."""
    digest, size = await _push_private(client)
    raw = _leaky_manifest(digest, size)
    manifest_digest = Digest.of(raw)
    app = client.server.app
    await app[state.STORAGE].put(manifest_digest, raw)
    await app[state.INDEX].put_manifest("bob/x", ManifestRecord(
        digest=str(manifest_digest), media_type=mt.OCI_MANIFEST, size=len(raw), blobs=(digest,), tags=("leak",)))
    await _assert_not_shown(client)
    r = await client.get("/api/v1/repositories/bob/x/manifests/leak")
    assert r.status == 200 and "not linked" in ((await r.json()).get("problem") or "")
    # the same image in team-a/private shows its config (the reader caches per repository)
    r = await client.get("/api/v1/repositories/team-a/private/manifests/v1")
    assert r.status == 200 and SECRET in await r.read()


async def test_gc_marks_references_only_through_links(client, config):
    """A reference row to a blob the repository does not link keeps nothing alive."""
    from registry.gc import collect

    digest, size = await _push_private(client)
    raw = _leaky_manifest(digest, size)
    app = client.server.app
    index = app[state.INDEX]
    await index.put_manifest("bob/x", ManifestRecord(
        digest=str(Digest.of(raw)), media_type=mt.OCI_MANIFEST, size=len(raw), blobs=(digest,)))
    assert digest in await index.live_digests()
    assert await index.delete_manifest("team-a/private", (await index.resolve_tag("team-a/private", "v1"))[0])
    assert await index.unlink_blob("team-a/private", digest)
    assert digest not in await index.live_digests()
    report = await collect(index, app[state.STORAGE], grace=-1)
    assert digest in report.swept

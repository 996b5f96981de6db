"""The distribution-spec's newest push parts: manifest PUT with ``?tag=`` parameters, and
``Docker-Content-Digest`` in the algorithm the client chose (sha512)."""
from __future__ import annotations

import json

from oci import mediatypes as mt
from oci.digest import Digest
from tests.registry.oci_client import image_manifest, push_blob

HEADERS = {"Content-Type": mt.OCI_MANIFEST}


async def _manifest(client, repo: str) -> bytes:
    cfg, layer = json.dumps({"os": "linux", "architecture": "amd64"}).encode(), b"layer" * 50
    await push_blob(client, repo, cfg)
    await push_blob(client, repo, layer)
    return image_manifest(cfg, [layer])


async def test_put_by_digest_with_tag_parameters_tags_it(client):
    raw = await _manifest(client, "conf/tags")
    digest = Digest.of(raw)
    r = await client.put(f"/v2/conf/tags/manifests/{digest}?tag=a&tag=b&tag=c", data=raw, headers=HEADERS)
    assert r.status == 201, await r.text()
    assert r.headers["Docker-Content-Digest"] == str(digest)
    assert sorted(r.headers.getall("OCI-Tag")) == ["a", "b", "c"]
    for tag in "abc":
        got = await client.get(f"/v2/conf/tags/manifests/{tag}")
        assert got.status == 200 and await got.read() == raw
    assert sorted((await (await client.get("/v2/conf/tags/tags/list")).json())["tags"]) == ["a", "b", "c"]
    r = await client.put(f"/v2/conf/tags/manifests/{digest}?tag=bad%20tag", data=raw, headers=HEADERS)
    assert r.status == 400 and (await r.json())["errors"][0]["code"] == "TAG_INVALID"


async def test_sha512_pushes_answer_sha512_digests(client):
    raw = await _manifest(client, "conf/sha512")
    digest = Digest.of(raw, "sha512")
    r = await client.put(f"/v2/conf/sha512/manifests/{digest}?tag=v1", data=raw, headers=HEADERS)
    assert r.status == 201, await r.text()
    assert r.headers["Docker-Content-Digest"] == str(digest)
    assert r.headers["Location"].endswith(str(digest))
    for ref in (str(digest), "v1"):
        for method in ("GET", "HEAD"):
            got = await client.request(method, f"/v2/conf/sha512/manifests/{ref}")
            assert got.status == 200 and got.headers["Docker-Content-Digest"] == str(digest), (method, ref)
    data = b"sha512 blob"
    blob_digest = Digest.of(data, "sha512")
    r = await client.post(f"/v2/conf/sha512/blobs/uploads/?digest={blob_digest}", data=data)
    assert r.status == 201 and r.headers["Docker-Content-Digest"] == str(blob_digest)
    r = await client.head(f"/v2/conf/sha512/blobs/{blob_digest}")
    assert r.status == 200 and r.headers["Docker-Content-Digest"] == str(blob_digest)

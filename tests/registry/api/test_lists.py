"""Tags list, catalog and referrers: lexical order, n/last pagination, Link, filters."""
from __future__ import annotations

import json

from oci import mediatypes as mt
from oci.digest import Digest
from tests.registry.oci_client import push_blob, push_image


async def _tag_all(client, name, tags):
    digest, raw = await push_image(client, name, tags[0])
    for t in tags[1:]:
        r = await client.put(f"/v2/{name}/manifests/{t}", data=raw, headers={"Content-Type": mt.OCI_MANIFEST})
        assert r.status == 201
    return digest, raw


async def test_tags_list_in_lexical_order_with_pagination(client):
    tags = ["b", "a", "C", "a1", "Z", "_x", "10", "9", "a-b", "a.b"]
    await _tag_all(client, "t/repo", tags)
    r = await client.get("/v2/t/repo/tags/list")
    assert r.status == 200
    assert await r.json() == {"name": "t/repo", "tags": sorted(tags)}
    assert "Link" not in r.headers
    seen, url = [], "/v2/t/repo/tags/list?n=3"
    while url:
        r = await client.get(url)
        page = (await r.json())["tags"]
        assert len(page) <= 3
        seen += page
        link = r.headers.get("Link")
        url = link[1 : link.index(">")] if link else None
        if link:
            assert link.endswith('rel="next"')
    assert seen == sorted(tags)
    r = await client.get("/v2/t/repo/tags/list?n=2&last=a1")
    assert (await r.json())["tags"] == ["a-b", "a.b"][:0] + sorted(t for t in tags if t > "a1")[:2]
    r = await client.get("/v2/t/repo/tags/list?n=0")
    assert (await r.json())["tags"] == []
    r = await client.get("/v2/t/repo/tags/list?n=100")
    assert "Link" not in r.headers


async def test_tags_list_errors(client):
    r = await client.get("/v2/nothing/tags/list")
    assert r.status == 404
    assert (await r.json())["errors"][0]["code"] == "NAME_UNKNOWN"
    await push_image(client, "x", "v")
    r = await client.get("/v2/x/tags/list?n=-1")
    assert r.status == 400
    r = await client.get("/v2/x/tags/list?n=abc")
    assert r.status == 400


async def test_catalog_pagination(client):
    names = ["zeta", "alpha/one", "alpha/two", "beta", "a-b/c"]
    for n in names:
        await push_blob(client, n, n.encode())
    r = await client.get("/v2/_catalog")
    assert (await r.json())["repositories"] == sorted(names)
    r = await client.get("/v2/_catalog?n=2")
    assert (await r.json())["repositories"] == sorted(names)[:2]
    assert r.headers["Link"] == f'</v2/_catalog?n=2&last={sorted(names)[1].replace("/", "%2F")}>; rel="next"'
    r = await client.get(r.headers["Link"][1 : r.headers["Link"].index(">")])
    assert (await r.json())["repositories"] == sorted(names)[2:4]
    r = await client.get(f"/v2/_catalog?last={sorted(names)[-1]}")
    assert (await r.json())["repositories"] == []


async def test_referrers_filter_and_unknown_subject(client):
    subject, subject_raw = await push_image(client, "ref", "v1")
    digests = {}
    for kind in ("application/vnd.example.sig", "application/vnd.example.sbom"):
        doc = {
            "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": kind,
            "config": {"mediaType": mt.OCI_EMPTY, "digest": mt.EMPTY_JSON_DIGEST, "size": 2},
            "layers": [],
            "subject": {"mediaType": mt.OCI_MANIFEST, "digest": subject, "size": len(subject_raw)},
        }
        raw = json.dumps(doc).encode()
        r = await client.put(f"/v2/ref/manifests/{Digest.of(raw)}", data=raw, headers={"Content-Type": mt.OCI_MANIFEST})
        assert r.status == 201, await r.text()
        digests[kind] = str(Digest.of(raw))
    r = await client.get(f"/v2/ref/referrers/{subject}")
    assert {m["digest"] for m in (await r.json())["manifests"]} == set(digests.values())
    assert "OCI-Filters-Applied" not in r.headers
    r = await client.get(f"/v2/ref/referrers/{subject}?artifactType=application/vnd.example.sig")
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["digest"] for m in (await r.json())["manifests"]] == [digests["application/vnd.example.sig"]]
    # Unknown subject (or repository): an empty index, not an error.
    for url in (f"/v2/ref/referrers/{Digest.of(b'unknown')}", f"/v2/nowhere/referrers/{subject}"):
        r = await client.get(url)
        assert r.status == 200
        assert await r.json() == {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
    r = await client.get("/v2/ref/referrers/sha256:short")
    assert r.status == 400
    assert (await r.json())["errors"][0]["code"] == "DIGEST_INVALID"


async def test_subject_need_not_exist(client):
    ghost = str(Digest.of(b"ghost"))
    doc = {
        "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": "application/x",
        "config": {"mediaType": mt.OCI_EMPTY, "digest": mt.EMPTY_JSON_DIGEST, "size": 2}, "layers": [],
        "subject": {"mediaType": mt.OCI_MANIFEST, "digest": ghost, "size": 5},
    }
    raw = json.dumps(doc).encode()
    r = await client.put("/v2/g/manifests/sig", data=raw, headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 201
    assert r.headers["OCI-Subject"] == ghost
    r = await client.get(f"/v2/g/referrers/{ghost}")
    assert len((await r.json())["manifests"]) == 1

"""Hostile input: nothing below may cause a 500, a traceback, or a stored name."""
from __future__ import annotations

import json

import pytest

from oci import mediatypes as mt
from oci.digest import Digest
from tests.registry.oci_client import push_image


async def _no_crash(r, *statuses):
    assert r.status in statuses, (r.status, await r.text())
    if r.status >= 400 and r.method != "HEAD":
        body = await r.json()
        assert body["errors"][0]["code"]


async def test_deeply_nested_manifest(client):
    r = await client.put("/v2/h/manifests/t", data=b"[" * 100_000 + b"]" * 100_000,
                         headers={"Content-Type": mt.OCI_MANIFEST})
    await _no_crash(r, 400)


async def test_huge_artifact_type(client):
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": "a/" + "b" * 1000,
           "config": {"mediaType": mt.OCI_EMPTY, "digest": mt.EMPTY_JSON_DIGEST, "size": 2}, "layers": []}
    r = await client.put("/v2/h/manifests/t", data=json.dumps(doc).encode(), headers={"Content-Type": mt.OCI_MANIFEST})
    await _no_crash(r, 400)


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/v2/_catalog?last=a%00b"),
        ("GET", "/v2/h/tags/list?last=" + "x" * 5000),
        ("GET", "/v2/h/referrers/" + str(Digest.of(b"s")) + "?artifactType=a%00b"),
        ("GET", "/v2/h%00x/tags/list"),
        ("GET", "/v2/h/manifests/a%00b"),
        ("GET", "/v2/h/blobs/sha256:" + "a" * 63 + "%00"),
        ("PATCH", "/v2/h/blobs/uploads/..%2F..%2Fetc"),
        ("GET", "/v2/" + "a/" * 200 + "b/tags/list"),
        ("POST", "/v2/h/blobs/uploads/?mount=sha256:zz&from=x"),
        ("GET", "/v2/h/tags/list?n=99999999999999999999999"),
    ],
)
async def test_hostile_urls(client, method, path):
    await push_image(client, "h", "v1", layers=1)
    r = await client.request(method, path, data=b"x" if method in ("PATCH", "PUT") else None)
    await _no_crash(r, 200, 202, 400, 404)
    r = await client.get("/v2/_catalog")
    assert (await r.json())["repositories"] == ["h"]


async def test_bad_content_range_header(client):
    r = await client.post("/v2/h/blobs/uploads/")
    loc = r.headers["Location"]
    for header in ("bytes", "5-1", "a-b", "0-99999999999999999999999999"):
        r = await client.patch(loc, data=b"abc", headers={"Content-Range": header})
        await _no_crash(r, 400, 416)


@pytest.mark.parametrize("field,value,path", [
    ("digest", 5, "config.digest"), ("size", "2", "config.size"), ("mediaType", ["x"], "config.mediaType"),
    ("urls", "http://x", "config.urls"), ("annotations", {"a": 1}, "config.annotations.a"),
])
async def test_descriptor_fields_of_the_wrong_type_name_the_field(client, field, value, path):
    """#13.4: a descriptor `digest` of 5 was a TypeError in Digest.parse and a 500."""
    config = {"mediaType": mt.OCI_CONFIG, "digest": mt.EMPTY_JSON_DIGEST, "size": 2, field: value}
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": config, "layers": []}
    r = await client.put("/v2/h/manifests/t", data=json.dumps(doc).encode(), headers={"Content-Type": mt.OCI_MANIFEST})
    await _no_crash(r, 400)
    err = (await r.json())["errors"][0]
    assert err["code"] == "MANIFEST_INVALID" and err["detail"]["field"] == path and path in err["message"]


@pytest.mark.parametrize("line", [b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"G\x00T /v2/ HTTP/1.1\r\n\r\n",
                                  b"GET /v2/ HTTP/1.1\r\nBad Header\r\n\r\n"])
async def test_malformed_request_lines_answer_400_quietly(client, caplog, line):
    """#13.11: each malformed request line wrote an ERROR traceback from aiohttp.server."""
    import asyncio
    import logging

    caplog.set_level(logging.DEBUG, "aiohttp.server")
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(line)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(100), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
    server_lines = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(server_lines) <= 1
    assert all(r.levelno <= logging.INFO and not r.exc_info and "\n" not in r.getMessage() for r in server_lines)

"""Blob GET/HEAD/DELETE, ranges, base endpoint and error envelopes."""
from __future__ import annotations

import hashlib

import pytest

from oci.digest import Digest
from registry.app import create_app
from tests.registry.oci_client import blob, push_blob


async def test_base_endpoint_has_api_version(client):
    r = await client.get("/v2/")
    assert r.status == 200
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert await r.json() == {}


async def test_get_and_head_blob(client):
    data, digest = blob(5000)
    await push_blob(client, "lib/app", data)
    r = await client.get(f"/v2/lib/app/blobs/{digest}")
    assert r.status == 200
    assert await r.read() == data
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Content-Type"] == "application/octet-stream"
    r = await client.head(f"/v2/lib/app/blobs/{digest}")
    assert r.status == 200
    assert int(r.headers["Content-Length"]) == 5000
    assert r.headers["Docker-Content-Digest"] == digest
    assert await r.read() == b""


async def test_blob_ranges(client):
    data, digest = blob(1000)
    await push_blob(client, "r", data)
    r = await client.get(f"/v2/r/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert r.status == 206
    assert await r.read() == data[10:20]
    assert r.headers["Content-Range"] == "bytes 10-19/1000"
    r = await client.get(f"/v2/r/blobs/{digest}", headers={"Range": "bytes=-5"})
    assert r.status == 206 and await r.read() == data[-5:]
    r = await client.get(f"/v2/r/blobs/{digest}", headers={"Range": "bytes=990-"})
    assert r.status == 206 and await r.read() == data[990:]
    r = await client.get(f"/v2/r/blobs/{digest}", headers={"Range": "bytes=5000-6000"})
    assert r.status == 416
    assert await r.read() == b""
    assert r.headers["Content-Range"] == "bytes */1000"


async def test_blob_unknown_and_not_visible_in_other_repo(client):
    data, digest = blob()
    await push_blob(client, "one", data)
    r = await client.get(f"/v2/two/blobs/{digest}")
    assert r.status == 404
    body = await r.json()
    assert body["errors"][0]["code"] == "BLOB_UNKNOWN"
    r = await client.head(f"/v2/one/blobs/{Digest.of(b'nothing')}")
    assert r.status == 404


@pytest.mark.parametrize(
    "path,code,status",
    [
        ("/v2/UPPER/blobs/sha256:" + "0" * 64, "NAME_INVALID", 400),
        ("/v2/a..b/blobs/sha256:" + "0" * 64, "NAME_INVALID", 400),
        ("/v2/ok/blobs/sha256:123", "DIGEST_INVALID", 400),
        ("/v2/ok/blobs/md5:" + "0" * 32, "DIGEST_INVALID", 400),
        ("/v2/ok/blobs/sha256:" + "G" * 64, "DIGEST_INVALID", 400),
    ],
)
async def test_invalid_names_and_digests(client, path, code, status):
    r = await client.get(path)
    assert r.status == status
    assert (await r.json())["errors"][0]["code"] == code


async def test_sha512_blob(client):
    data = b"sha512 content" * 100
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    r = await client.post(f"/v2/s/blobs/uploads/?digest={digest}", data=data)
    assert r.status == 201, await r.text()
    assert r.headers["Docker-Content-Digest"] == digest
    r = await client.get(f"/v2/s/blobs/{digest}")
    assert r.status == 200 and await r.read() == data


async def test_delete_blob(client):
    data, digest = blob()
    await push_blob(client, "d", data)
    r = await client.delete(f"/v2/d/blobs/{digest}")
    assert r.status == 202
    r = await client.head(f"/v2/d/blobs/{digest}")
    assert r.status == 404
    r = await client.delete(f"/v2/d/blobs/{digest}")
    assert r.status == 404
    assert (await r.json())["errors"][0]["code"] == "BLOB_UNKNOWN"


async def test_deletes_disabled(aiohttp_client, config):
    config.delete_enabled = False
    client = await aiohttp_client(create_app(config))
    data, digest = blob()
    await push_blob(client, "d", data)
    r = await client.delete(f"/v2/d/blobs/{digest}")
    assert r.status == 405
    assert (await r.json())["errors"][0]["code"] == "UNSUPPORTED"
    r = await client.delete("/v2/d/manifests/latest")
    assert r.status == 405
    assert (await r.json())["errors"][0]["code"] == "UNSUPPORTED"
    r = await client.head(f"/v2/d/blobs/{digest}")
    assert r.status == 200


async def test_unknown_endpoint_and_method_get_envelopes(client):
    r = await client.get("/v2/x/unknown/thing")
    assert r.status == 404
    assert "errors" in await r.json()
    r = await client.post("/v2/x/manifests/latest")
    assert r.status == 405
    assert (await r.json())["errors"][0]["code"] == "UNSUPPORTED"


async def test_internal_error_is_an_envelope_without_traceback(client, monkeypatch):
    async def boom(*a, **k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr("registry.index.queries.RepositoryQueries.blob_size", boom)
    r = await client.get("/v2/x/blobs/sha256:" + "0" * 64)
    assert r.status == 500
    text = await r.text()
    assert "UNKNOWN" in text and "secret internals" not in text and "Traceback" not in text


async def test_streamed_blobs_for_drivers_without_local_files(aiohttp_client, config, monkeypatch):
    # A remote driver (S3 later) has no local path: blobs are streamed, with one Range.
    monkeypatch.setattr("registry.storage.filesystem.FilesystemDriver.local_path", lambda self, d: None)
    client = await aiohttp_client(create_app(config))
    data, digest = blob(3 << 20)
    await push_blob(client, "remote", data)
    r = await client.get(f"/v2/remote/blobs/{digest}")
    assert r.status == 200 and await r.read() == data
    r = await client.get(f"/v2/remote/blobs/{digest}", headers={"Range": "bytes=100-199"})
    assert r.status == 206 and await r.read() == data[100:200]
    assert r.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    r = await client.get(f"/v2/remote/blobs/{digest}", headers={"Range": "bytes=-10"})
    assert await r.read() == data[-10:]
    r = await client.head(f"/v2/remote/blobs/{digest}")
    assert r.status == 200 and int(r.headers["Content-Length"]) == len(data)
    for bad in ("bytes=99999999-", "items=0-1", "bytes=5-1", "bytes=0-1,4-5"):
        r = await client.get(f"/v2/remote/blobs/{digest}", headers={"Range": bad})
        assert r.status == 416, bad
        assert r.headers["Content-Range"] == f"bytes */{len(data)}"

"""Uploads: monolithic, POST+PUT, chunked and streamed PATCH, status, cancel, mount, restart."""
from __future__ import annotations

import hashlib

from oci.digest import Digest
from registry.app import create_app
from tests.registry.oci_client import blob, push_blob


async def _start(client, name="up"):
    r = await client.post(f"/v2/{name}/blobs/uploads/")
    assert r.status == 202, await r.text()
    loc = r.headers["Location"]
    assert loc.startswith(f"/v2/{name}/blobs/uploads/")
    assert r.headers["Range"] == "0-0"
    assert r.headers["Docker-Upload-UUID"] == loc.rsplit("/", 1)[1]
    return loc


async def test_post_then_put_monolithic(client):
    data, digest = blob(3000)
    loc = await _start(client)
    r = await client.put(f"{loc}?digest={digest}", data=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status == 201, await r.text()
    assert r.headers["Location"] == f"/v2/up/blobs/{digest}"
    assert r.headers["Docker-Content-Digest"] == digest
    r = await client.get(f"/v2/up/blobs/{digest}")
    assert await r.read() == data
    # The session is gone once finished.
    r = await client.get(loc)
    assert r.status == 404
    assert (await r.json())["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"


async def test_chunked_patch_with_content_range(client):
    data, digest = blob(10_000)
    loc = await _start(client)
    r = await client.patch(loc, data=data[:4000], headers={"Content-Range": "0-3999", "Content-Type": "application/octet-stream"})
    assert r.status == 202, await r.text()
    assert r.headers["Range"] == "0-3999"
    loc = r.headers["Location"]
    r = await client.get(loc)
    assert r.status == 204
    assert r.headers["Range"] == "0-3999"
    # Out of order: 416 with where the session really is, and nothing appended.
    r = await client.patch(loc, data=data[5000:6000], headers={"Content-Range": "5000-5999"})
    assert r.status == 416
    assert r.headers["Range"] == "0-3999"
    assert r.headers["Location"] == loc
    assert (await r.json())["errors"][0]["code"] == "RANGE_INVALID"
    r = await client.patch(loc, data=data[4000:], headers={"Content-Range": "4000-9999"})
    assert r.status == 202
    assert r.headers["Range"] == "0-9999"
    r = await client.put(f"{loc}?digest={digest}")
    assert r.status == 201, await r.text()
    r = await client.get(f"/v2/up/blobs/{digest}")
    assert await r.read() == data


async def test_streamed_patch_without_content_range_and_final_chunk_in_put(client):
    data, digest = blob(2_500_000)

    async def gen(part):
        for i in range(0, len(part), 100_000):
            yield part[i : i + 100_000]

    loc = await _start(client)
    r = await client.patch(loc, data=gen(data[:2_000_000]))  # chunked transfer encoding
    assert r.status == 202
    assert r.headers["Range"] == "0-1999999"
    r = await client.put(f"{r.headers['Location']}?digest={digest}", data=data[2_000_000:])
    assert r.status == 201
    r = await client.head(f"/v2/up/blobs/{digest}")
    assert int(r.headers["Content-Length"]) == len(data)


async def test_content_length_must_match_content_range(client):
    loc = await _start(client)
    r = await client.patch(loc, data=b"x" * 10, headers={"Content-Range": "0-19"})
    assert r.status in (400, 416)
    assert (await r.json())["errors"][0]["code"] in ("SIZE_INVALID", "RANGE_INVALID")


async def test_wrong_digest_is_rejected_and_nothing_is_visible(client):
    data, _ = blob(1000)
    wrong = str(Digest.of(b"other"))
    loc = await _start(client)
    r = await client.put(f"{loc}?digest={wrong}", data=data)
    assert r.status == 400
    assert (await r.json())["errors"][0]["code"] == "DIGEST_INVALID"
    r = await client.head(f"/v2/up/blobs/{wrong}")
    assert r.status == 404
    r = await client.post(f"/v2/up/blobs/uploads/?digest={wrong}", data=data)
    assert r.status == 400
    assert (await r.json())["errors"][0]["code"] == "DIGEST_INVALID"


async def test_put_without_digest_or_bad_digest(client):
    loc = await _start(client)
    r = await client.put(loc, data=b"abc")
    assert r.status == 400
    assert (await r.json())["errors"][0]["code"] == "DIGEST_INVALID"
    r = await client.put(f"{loc}?digest=sha256:nothex", data=b"abc")
    assert r.status == 400


async def test_cancel_upload(client):
    loc = await _start(client)
    await client.patch(loc, data=b"partial")
    r = await client.delete(loc)
    assert r.status == 204
    r = await client.get(loc)
    assert r.status == 404
    r = await client.patch(loc, data=b"more")
    assert r.status == 404
    assert (await r.json())["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"


async def test_session_belongs_to_its_repository(client):
    loc = await _start(client, "a")
    other = loc.replace("/v2/a/", "/v2/b/")
    r = await client.get(other)
    assert r.status == 404
    r = await client.get("/v2/a/blobs/uploads/not-a-uuid")
    assert r.status == 404
    assert (await r.json())["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"


async def test_cross_repository_mount(client):
    data, digest = blob()
    await push_blob(client, "src/repo", data)
    r = await client.post(f"/v2/dst/blobs/uploads/?mount={digest}&from=src/repo")
    assert r.status == 201
    assert r.headers["Location"] == f"/v2/dst/blobs/{digest}"
    assert r.headers["Docker-Content-Digest"] == digest
    r = await client.get(f"/v2/dst/blobs/{digest}")
    assert await r.read() == data


async def test_mount_falls_back_to_upload_session(client):
    data, digest = blob()
    await push_blob(client, "src", data)
    for source in ("elsewhere", "Not_Valid!"):
        r = await client.post(f"/v2/dst/blobs/uploads/?mount={digest}&from={source}")
        assert r.status == 202
        assert "Docker-Upload-UUID" in r.headers
    # Unknown blob in an existing repo: also a fresh session.
    r = await client.post(f"/v2/dst/blobs/uploads/?mount={Digest.of(b'none')}&from=src")
    assert r.status == 202
    r = await client.put(f"{r.headers['Location']}?digest={digest}", data=data)
    assert r.status == 201


async def test_same_blob_in_two_repositories_is_stored_once(client, config):
    data, digest = blob()
    await push_blob(client, "one", data)
    await push_blob(client, "two", data)
    d = Digest.parse(digest)
    files = list((__import__("pathlib").Path(config.data_dir) / "blobs" / "sha256").rglob("*"))
    assert sum(1 for f in files if f.name == d.hex) == 1


async def test_upload_survives_restart(aiohttp_client, config):
    data, digest = blob(300_000)
    client = await aiohttp_client(create_app(config))
    loc = await _start(client)
    r = await client.patch(loc, data=data[:100_000], headers={"Content-Range": "0-99999"})
    assert r.status == 202
    await client.close()
    # A new process: no in-memory hasher, the staged bytes are re-hashed at the end.
    client = await aiohttp_client(create_app(config))
    r = await client.get(loc)
    assert r.status == 204 and r.headers["Range"] == "0-99999"
    r = await client.patch(loc, data=data[100_000:], headers={"Content-Range": f"100000-{len(data) - 1}"})
    assert r.status == 202
    r = await client.put(f"{loc}?digest={digest}")
    assert r.status == 201, await r.text()
    r = await client.get(f"/v2/up/blobs/{digest}")
    assert hashlib.sha256(await r.read()).hexdigest() == digest.split(":")[1]


async def test_expired_uploads_are_cleaned(aiohttp_client, config):
    from registry import state
    from registry.app import expire_uploads

    config.upload_expiry = 0.01
    app = create_app(config)
    client = await aiohttp_client(app)
    loc = await _start(client)
    import asyncio

    await asyncio.sleep(0.05)
    assert await expire_uploads(app) >= 1
    r = await client.get(loc)
    assert r.status == 404
    assert await app[state.STORAGE].upload_size(loc.rsplit("/", 1)[1]) is None


async def test_failed_monolithic_upload_leaves_no_session(client, config):
    from pathlib import Path

    r = await client.post(f"/v2/up/blobs/uploads/?digest={Digest.of(b'other')}", data=b"these bytes")
    assert r.status == 400
    assert list((Path(config.data_dir) / "uploads").iterdir()) == []


async def test_final_chunk_in_put_with_content_range(client):
    data, digest = blob(2000)
    loc = await _start(client)
    r = await client.patch(loc, data=data[:1200], headers={"Content-Range": "0-1199"})
    assert r.status == 202
    loc = r.headers["Location"]
    r = await client.put(f"{loc}?digest={digest}", data=data[1000:], headers={"Content-Range": "1000-1999"})
    assert r.status == 416  # overlaps what is already there
    r = await client.put(f"{loc}?digest={digest}", data=data[1200:], headers={"Content-Range": "1200-1999"})
    assert r.status == 201, await r.text()
    assert r.headers["Location"] == f"/v2/up/blobs/{digest}"


async def test_open_sessions_are_capped_per_repository_and_per_client(aiohttp_client, config):
    """#13.10: 3,000 abandoned sessions stayed for the 7-day expiry with no cap."""
    from registry.app import create_app

    config.max_open_uploads_per_repository, config.max_open_uploads_per_client = 3, 5
    client = await aiohttp_client(create_app(config))
    locations = []
    for _ in range(3):
        r = await client.post("/v2/cap/a/blobs/uploads/")
        assert r.status == 202
        locations.append(r.headers["Location"])
    r = await client.post("/v2/cap/a/blobs/uploads/")
    assert r.status == 429
    err = (await r.json())["errors"][0]
    assert err["code"] == "TOOMANYREQUESTS" and "repository cap/a has 3 open upload sessions" in err["message"]
    for _ in range(2):
        assert (await client.post("/v2/cap/b/blobs/uploads/")).status == 202
    r = await client.post("/v2/cap/c/blobs/uploads/")
    assert r.status == 429 and "this client has 5" in (await r.json())["errors"][0]["message"]
    # a monolithic push opens no session and still works; a cancelled session frees a slot
    data, digest = blob(100)
    assert (await client.post(f"/v2/cap/a/blobs/uploads/?digest={digest}", data=data)).status == 201
    assert (await client.delete(locations[0])).status == 204
    assert (await client.post("/v2/cap/a/blobs/uploads/")).status == 202


def test_open_session_caps_are_settings():
    from registry.config import ConfigError, load_config

    cfg = load_config(environ={"DOCKYARD_REGISTRY_MAX_OPEN_UPLOADS_PER_CLIENT": "7"})
    assert cfg.max_open_uploads_per_client == 7 and cfg.max_open_uploads_per_repository == 1000
    import pytest

    with pytest.raises(ConfigError, match="max_open_uploads_per_repository"):
        load_config(environ={"DOCKYARD_REGISTRY_MAX_OPEN_UPLOADS_PER_REPOSITORY": "many"})

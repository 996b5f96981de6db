"""Thread calls of the write paths (PROFILE.md section 25): on the filesystem driver and SQLite, a
push's and a manifest PUT's small steps ride the index's own thread calls instead of a thread hop
each. POST: one index write (cap count, row; no staging area: that is made with the first appended
byte, PROFILE 37); PUT of a small body into an empty session: one index call from the event loop:
a write (row, staged size, GC review), after whose commit the verified put and then the write
naming the blob (link, row deletion) are chained without the loop. Manifest PUT: one index write (reference check + GC review), then the put chained
before the naming write. The order of what is made durable is
unchanged: review before bytes, bytes before names, staging area after its row."""
from __future__ import annotations

import json
import os

import pytest

from oci import mediatypes as mt
from oci.digest import Digest
from registry import state
from registry.app import create_app
from registry.config import RegistryConfig
from registry.index.database import Database
from registry.ops import context
from registry.storage.filesystem import FilesystemDriver
from tests.registry.oci_client import blob, config_blob, image_manifest, push_blob


@pytest.fixture
def counted(monkeypatch):
    """Counts the index reads / writes and the filesystem driver's thread calls made while
    serving a request (not the server's background tasks: expiry, the catalog's ranking)."""
    calls = {"read": 0, "write": 0, "storage": 0}
    real_read, real_write, real_run = Database.read, Database.write, FilesystemDriver._run

    def count(kind: str) -> None:
        if context.current_request() is not None:
            calls[kind] += 1

    async def read(self, fn):
        count("read")
        return await real_read(self, fn)

    async def write(self, fn, *a, **k):
        count("write")
        return await real_write(self, fn, *a, **k)

    async def run(self, fn, *args):
        count("storage")
        return await real_run(self, fn, *args)

    monkeypatch.setattr(Database, "read", read)
    monkeypatch.setattr(Database, "write", write)
    monkeypatch.setattr(FilesystemDriver, "_run", run)

    def take() -> dict[str, int]:
        out = dict(calls)
        for k in calls:
            calls[k] = 0
        return out

    return take


def _config(tmp_path, **extra) -> RegistryConfig:
    return RegistryConfig(data_dir=str(tmp_path / "data"), database_url=f"sqlite+aiosqlite:///{tmp_path / 'i.db'}",
                          **extra).finish()


def _staging(tmp_path) -> list[str]:
    return sorted(os.listdir(tmp_path / "data" / "uploads"))


async def test_post_and_put_of_a_small_blob_take_two_index_calls_and_no_storage_call(aiohttp_client, tmp_path,
                                                                                          counted):
    client = await aiohttp_client(create_app(_config(tmp_path)))
    data, digest = blob(4096)
    await push_blob(client, "hops/warm", data)  # first requests: quota limits cached, etc.
    counted()
    r = await client.post("/v2/hops/a/blobs/uploads/")
    assert r.status == 202, await r.text()
    upload_id = r.headers["Docker-Upload-UUID"]
    assert counted() == {"read": 0, "write": 1, "storage": 0}
    assert _staging(tmp_path) == []  # the session is its row: no staging area until bytes are appended
    data, digest = blob(4096)
    r = await client.put(f"{r.headers['Location']}?digest={digest}", data=data,
                         headers={"Content-Type": "application/octet-stream"})
    assert r.status == 201, await r.text()
    # One index call from the event loop: the session's row, staged size and GC review; the
    # verified put and the naming write are chained after its commit (Database.write(then=)).
    assert counted() == {"read": 0, "write": 1, "storage": 0}
    assert _staging(tmp_path) == []  # none was ever made
    assert await (await client.get(f"/v2/hops/a/blobs/{digest}")).read() == data
    assert (await client.get(r.headers["Location"].replace(f"blobs/{digest}", f"blobs/uploads/{upload_id}"))).status \
        == 404


async def test_session_reads_take_one_thread_call(aiohttp_client, tmp_path, counted):
    client = await aiohttp_client(create_app(_config(tmp_path)))
    r = await client.post("/v2/hops/s/blobs/uploads/")
    loc = r.headers["Location"]
    counted()
    r = await client.get(loc)
    assert r.status == 204 and r.headers["Range"] == "0-0"  # no staging area yet: empty
    assert counted() == {"read": 1, "write": 0, "storage": 0}  # the row and the stat together
    r = await client.patch(loc, data=b"x" * 100, headers={"Content-Type": "application/octet-stream"})
    assert r.status == 202 and r.headers["Range"] == "0-99", await r.text()
    counted()
    r = await client.get(loc)
    assert r.status == 204 and r.headers["Range"] == "0-99"
    assert counted() == {"read": 1, "write": 0, "storage": 0}
    os.remove(tmp_path / "data" / "uploads" / loc.rsplit("/", 1)[1] / "data")  # staging lost: unknown
    assert (await client.get(loc)).status == 404


async def test_open_session_caps_are_counted_in_the_write_that_opens_one(aiohttp_client, tmp_path, counted):
    app = create_app(_config(tmp_path, max_open_uploads_per_client=2))
    client = await aiohttp_client(app)
    for _ in range(2):
        assert (await client.post("/v2/hops/c/blobs/uploads/")).status == 202
    counted()
    r = await client.post("/v2/hops/c/blobs/uploads/")
    assert r.status == 429
    assert (await r.json())["errors"][0]["detail"] == {"open_uploads": 2, "limit": 2}
    assert counted() == {"read": 0, "write": 1, "storage": 0}
    assert (await app[state.INDEX].open_uploads("hops/c", None))[0] == 2  # no row for the refused one
    assert _staging(tmp_path) == []  # nor a staging area (the open ones have none yet either)
    assert not app[state.UPLOADS]._hashers  # nor anything kept in memory


async def _image_blobs(client, repo: str) -> tuple[bytes, bytes]:
    """A config and a layer pushed to ``repo``, for the manifests a test PUTs."""
    cfg, _ = config_blob()
    layer, _ = blob(2000)
    await push_blob(client, repo, cfg)
    await push_blob(client, repo, layer)
    return cfg, layer


async def test_manifest_put_takes_one_index_write_and_no_storage_call(aiohttp_client, tmp_path, counted):
    client = await aiohttp_client(create_app(_config(tmp_path)))
    cfg, layer = await _image_blobs(client, "hops/m")
    counted()
    r = await client.put("/v2/hops/m/manifests/v0", data=image_manifest(cfg, [layer]),
                         headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 201  # the config is validated (read once) by this one
    assert counted()["write"] == 2  # check + review, then the put chained before the naming write
    r = await client.put("/v2/hops/m/manifests/v1", data=image_manifest(cfg, [layer], annotations={"n": "1"}),
                         headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 201, await r.text()
    # check + review, then the put and the naming chained after its commit (PROFILE 36)
    assert counted() == {"read": 0, "write": 1, "storage": 0}
    r = await client.get("/v2/hops/m/manifests/v1", headers={"Accept": mt.OCI_MANIFEST})
    assert r.status == 200 and json.loads(await r.read())["annotations"] == {"n": "1"}
    r = await client.put("/v2/hops/m/manifests/v2?tag=v2b&tag=v2c",
                         data=image_manifest(cfg, [layer], annotations={"n": "2"}),
                         headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 201 and r.headers.getall("OCI-Tag") == ["v2", "v2b", "v2c"], await r.text()
    assert counted()["write"] == 1
    tags = (await (await client.get("/v2/hops/m/tags/list")).json())["tags"]
    assert sorted(tags) == ["v0", "v1", "v2", "v2b", "v2c"]
    missing, _ = blob(10)
    counted()
    r = await client.put("/v2/hops/m/manifests/v3", data=image_manifest(cfg, [missing]),
                         headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 404 and (await r.json())["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    assert counted() == {"read": 0, "write": 1, "storage": 0}  # refused before any bytes were written
    assert (await client.get("/v2/hops/m/manifests/v3")).status == 404


async def test_a_manifest_put_that_must_stop_between_its_steps_takes_them_one_at_a_time(aiohttp_client, tmp_path,
                                                                                         counted):
    """What runs between the check and the naming keeps its place: an invalid ``?tag=`` is still
    refused after the references (unknown blobs first), a namespace's quota is checked before
    the bytes are written."""
    from registry.lifecycle.quotas import set_quota

    app = create_app(_config(tmp_path))
    client = await aiohttp_client(app)
    cfg, layer = await _image_blobs(client, "hops/q")
    r = await client.put("/v2/hops/q/manifests/v0", data=image_manifest(cfg, [layer]),
                         headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 201
    missing, _ = blob(11)
    r = await client.put("/v2/hops/q/manifests/v1?tag=-bad", data=image_manifest(cfg, [missing]),
                         headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 404 and (await r.json())["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    r = await client.put("/v2/hops/q/manifests/v1?tag=-bad", data=image_manifest(cfg, [layer]),
                         headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 400 and (await r.json())["errors"][0]["code"] == "TAG_INVALID"
    # Another namespace, with a quota from its first request on: its blobs fit, no manifest does.
    await set_quota(app[state.INDEX], "quota", len(cfg) + len(layer) + 10)
    await push_blob(client, "quota/q", cfg)  # the same config, known valid by now
    await push_blob(client, "quota/q", layer)
    counted()
    r = await client.put("/v2/quota/q/manifests/v2", data=image_manifest(cfg, [layer], annotations={"n": "2"}),
                         headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 403 and (await r.json())["errors"][0]["code"] == "DENIED", await r.text()
    assert counted()["write"] == 1  # the check and review; nothing chained, nothing named
    assert (await client.get("/v2/quota/q/manifests/v2")).status == 404


async def test_a_sweep_that_took_the_chained_puts_bytes_sends_the_rest_through_store_and_name(
        aiohttp_client, tmp_path, monkeypatch):
    """BytesSwept from the chained naming write: the bytes are written and named again by
    store_and_name's remaining attempts, as a manifest PUT always did."""
    from registry.lifecycle import reviews

    client = await aiohttp_client(create_app(_config(tmp_path)))
    cfg, layer = await _image_blobs(client, "hops/s")
    r = await client.put("/v2/hops/s/manifests/v0", data=image_manifest(cfg, [layer]),
                         headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 201
    real, swept = reviews.bytes_maybe_swept, []

    def once(conn, digest, mark):
        if not swept:
            swept.append(digest)
            return True
        return real(conn, digest, mark)

    monkeypatch.setattr(reviews, "bytes_maybe_swept", once)
    raw = image_manifest(cfg, [layer], annotations={"n": "s"})
    r = await client.put("/v2/hops/s/manifests/v1", data=raw, headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 201, await r.text()
    assert swept == [r.headers["Docker-Content-Digest"]]
    r = await client.get("/v2/hops/s/manifests/v1", headers={"Accept": mt.OCI_MANIFEST})
    assert r.status == 200 and await r.read() == raw


async def test_references_gone_at_the_chained_naming_refuse_the_manifest(aiohttp_client, tmp_path, monkeypatch):
    """A reference condemned between the check and the chained naming write: 404
    MANIFEST_BLOB_UNKNOWN, nothing recorded, and the written bytes queued for review."""
    from registry.lifecycle import reviews

    client = await aiohttp_client(create_app(_config(tmp_path)))
    cfg, layer = await _image_blobs(client, "hops/g")
    r = await client.put("/v2/hops/g/manifests/v0", data=image_manifest(cfg, [layer]),
                         headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 201
    refused: list[str] = []
    real_enqueue = reviews.enqueue_blobs

    def enqueue(conn, digests, after, reason, **kw):
        if reason == "upload_refused":
            refused.extend(digests)
        return real_enqueue(conn, digests, after, reason, **kw)

    monkeypatch.setattr(reviews, "unusable_blobs", lambda conn, digests: set(digests))
    monkeypatch.setattr(reviews, "enqueue_blobs", enqueue)
    raw = image_manifest(cfg, [layer], annotations={"n": "g"})
    r = await client.put("/v2/hops/g/manifests/v1", data=raw, headers={"Content-Type": mt.OCI_MANIFEST})
    body = await r.json()
    assert r.status == 404 and body["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN", body
    assert "being garbage-collected" in body["errors"][0]["message"]
    assert refused == [str(Digest.of(raw))]
    monkeypatch.undo()
    assert (await client.get("/v2/hops/g/manifests/v1")).status == 404


async def test_a_chained_put_that_fails_names_nothing_and_leaves_the_session_usable(aiohttp_client, tmp_path,
                                                                                   monkeypatch):
    """The put chained before the naming write fails (a full disk): the answer is the storage's
    (507), no write is queued (nothing linked, the row and staging area stay), and the same
    session takes the retried PUT."""
    from registry.storage.driver import StorageFull

    client = await aiohttp_client(create_app(_config(tmp_path)))
    real = FilesystemDriver.put_now
    threads: list[str] = []

    def full(self, digest, data):
        import threading
        threads.append(threading.current_thread().name)
        raise StorageFull("storage is full (No space left on device)")

    r = await client.post("/v2/hops/f/blobs/uploads/")
    loc, upload_id = r.headers["Location"], r.headers["Docker-Upload-UUID"]
    data, digest = blob(4096)
    monkeypatch.setattr(FilesystemDriver, "put_now", full)
    r = await client.put(f"{loc}?digest={digest}", data=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status == 507, await r.text()
    assert threads and threads[0].startswith("index-before")
    assert (await client.head(f"/v2/hops/f/blobs/{digest}")).status == 404
    r = await client.get(loc)
    assert r.status == 204 and r.headers["Docker-Upload-UUID"] == upload_id  # the session is still open
    assert _staging(tmp_path) == []  # and still has no staging area
    monkeypatch.setattr(FilesystemDriver, "put_now", real)
    r = await client.put(f"{loc}?digest={digest}", data=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status == 201, await r.text()
    assert await (await client.get(f"/v2/hops/f/blobs/{digest}")).read() == data
    assert _staging(tmp_path) == []


async def test_a_manifest_put_whose_chained_put_fails_records_nothing(aiohttp_client, tmp_path, monkeypatch):
    from registry.storage.driver import StorageFull, StorageUnavailable

    client = await aiohttp_client(create_app(_config(tmp_path)))
    cfg, layer = await _image_blobs(client, "hops/mf")

    def broken(self, digest, data):
        raise StorageUnavailable("storage failed (Input/output error)")

    monkeypatch.setattr(FilesystemDriver, "put_now", broken)
    r = await client.put("/v2/hops/mf/manifests/v1", data=image_manifest(cfg, [layer]),
                         headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 503 and r.headers["Retry-After"], await r.text()
    assert (await client.get("/v2/hops/mf/manifests/v1")).status == 404  # nothing recorded
    assert not (await (await client.get("/v2/hops/mf/tags/list")).json()).get("tags")
    monkeypatch.undo()
    r = await client.put("/v2/hops/mf/manifests/v1", data=image_manifest(cfg, [layer]),
                         headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 201, await r.text()
    # The config known valid now: the put is chained after the check's commit, from the writer.
    threads: list[str] = []

    def full(self, digest, data):
        import threading
        threads.append(threading.current_thread().name)
        raise StorageFull("storage is full (No space left on device)")

    monkeypatch.setattr(FilesystemDriver, "put_now", full)
    r = await client.put("/v2/hops/mf/manifests/v2", data=image_manifest(cfg, [layer], annotations={"n": "2"}),
                         headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 507, await r.text()
    assert threads and threads[0].startswith("index-before")
    assert (await client.get("/v2/hops/mf/manifests/v2")).status == 404  # nothing recorded
    assert (await (await client.get("/v2/hops/mf/tags/list")).json())["tags"] == ["v1"]


async def test_a_small_last_chunk_put_into_a_non_empty_session_is_appended(aiohttp_client, tmp_path):
    """The chained PUT reads the small body before it knows the session holds bytes already:
    that body is then appended, as a streamed one would be."""
    client = await aiohttp_client(create_app(_config(tmp_path)))
    r = await client.post("/v2/hops/n/blobs/uploads/")
    loc = r.headers["Location"]
    data, digest = blob(6000)
    r = await client.patch(loc, data=data[:4000], headers={"Content-Type": "application/octet-stream",
                                                           "Content-Range": "0-3999"})
    assert r.status == 202, await r.text()
    r = await client.put(f"{r.headers['Location']}?digest={digest}", data=data[4000:],
                         headers={"Content-Type": "application/octet-stream"})
    assert r.status == 201, await r.text()
    assert await (await client.get(f"/v2/hops/n/blobs/{digest}")).read() == data
    assert _staging(tmp_path) == []


async def test_the_first_patch_makes_the_staging_area_in_one_index_write(aiohttp_client, tmp_path, counted):
    """A session's staging area is made with its first bytes, in the index write that marks the
    row staged (so a missing area is "lost" from then on); the bytes then go as before."""
    client = await aiohttp_client(create_app(_config(tmp_path)))
    r = await client.post("/v2/hops/p/blobs/uploads/")
    loc, upload_id = r.headers["Location"], r.headers["Docker-Upload-UUID"]
    data, digest = blob(3000)
    counted()
    r = await client.patch(loc, data=data[:1000], headers={"Content-Type": "application/octet-stream",
                                                           "Content-Range": "0-999"})
    assert r.status == 202 and r.headers["Range"] == "0-999", await r.text()
    calls = counted()
    assert calls["write"] == 1 and calls["read"] == 1  # the session's read, then the one staging write
    assert _staging(tmp_path) == [upload_id]
    r = await client.patch(loc, data=data[1000:], headers={"Content-Type": "application/octet-stream",
                                                           "Content-Range": "1000-2999"})
    assert r.status == 202 and r.headers["Range"] == "0-2999"
    assert counted()["write"] == 0  # later chunks touch only the staging file, as before
    r = await client.put(f"{loc}?digest={digest}")
    assert r.status == 201, await r.text()
    assert await (await client.get(f"/v2/hops/p/blobs/{digest}")).read() == data
    assert _staging(tmp_path) == []


async def test_a_session_without_a_staging_area_takes_every_kind_of_put(aiohttp_client, tmp_path):
    """The PUTs that need a staging area make it first: an empty blob finished with no body, and
    a body streamed because it is larger than a single put takes; an out-of-order PATCH into a
    session without one is answered with its true (empty) range."""
    client = await aiohttp_client(create_app(_config(tmp_path)))
    empty, empty_digest = blob(0)
    r = await client.post("/v2/hops/e/blobs/uploads/")
    r = await client.put(f"{r.headers['Location']}?digest={empty_digest}")
    assert r.status == 201, await r.text()
    r = await client.get(f"/v2/hops/e/blobs/{empty_digest}")
    assert r.status == 200 and await r.read() == b""

    big, big_digest = blob(3 * 1024 * 1024)  # above the single put's limit: streamed into the session
    r = await client.post("/v2/hops/e/blobs/uploads/")
    r = await client.put(f"{r.headers['Location']}?digest={big_digest}", data=big,
                         headers={"Content-Type": "application/octet-stream"})
    assert r.status == 201, await r.text()
    assert await (await client.get(f"/v2/hops/e/blobs/{big_digest}")).read() == big

    r = await client.post("/v2/hops/e/blobs/uploads/")
    loc = r.headers["Location"]
    r = await client.patch(loc, data=b"abc", headers={"Content-Type": "application/octet-stream",
                                                      "Content-Range": "5-7"})
    assert r.status == 416 and r.headers["Range"] == "0-0"
    r = await client.delete(loc)
    assert r.status == 204
    assert (await client.get(loc)).status == 404
    assert _staging(tmp_path) == []


async def test_a_session_without_a_staging_area_survives_a_restart(aiohttp_client, tmp_path):
    app = create_app(_config(tmp_path))
    client = await aiohttp_client(app)
    r = await client.post("/v2/hops/r/blobs/uploads/")
    path = r.headers["Location"]
    await client.close()
    client = await aiohttp_client(create_app(_config(tmp_path)))
    r = await client.get(path)
    assert r.status == 204 and r.headers["Range"] == "0-0"
    data, digest = blob(4096)
    r = await client.put(f"{path}?digest={digest}", data=data, headers={"Content-Type": "application/octet-stream"})
    assert r.status == 201, await r.text()
    assert await (await client.get(f"/v2/hops/r/blobs/{digest}")).read() == data


async def test_a_staging_area_made_before_a_crash_is_read_as_the_sessions_bytes(aiohttp_client, tmp_path):
    """The staging area is made inside the index write that marks the row staged: a crash before
    that commit leaves an area whose row still says "not made". Its bytes are the session's
    (never a session read as empty while it holds some); the next PATCH goes on from there."""
    app = create_app(_config(tmp_path))
    client = await aiohttp_client(app)
    r = await client.post("/v2/hops/k/blobs/uploads/")
    loc, upload_id = r.headers["Location"], r.headers["Docker-Upload-UUID"]
    app[state.UPLOADS].create_now(upload_id)  # as the crashed write left it: area made, row not marked
    (tmp_path / "data" / "uploads" / upload_id / "data").write_bytes(b"12345")
    r = await client.get(loc)
    assert r.status == 204 and r.headers["Range"] == "0-4"
    data = b"12345" + b"6" * 95
    r = await client.patch(loc, data=data[5:], headers={"Content-Type": "application/octet-stream",
                                                        "Content-Range": "5-99"})
    assert r.status == 202 and r.headers["Range"] == "0-99", await r.text()
    import hashlib
    r = await client.put(f"{loc}?digest=sha256:{hashlib.sha256(data).hexdigest()}")
    assert r.status == 201, await r.text()


async def test_sessions_opened_before_the_staged_column_count_on_their_staging_area(aiohttp_client, tmp_path):
    """Migration 0008: a session opened by an older server had its staging area made at POST;
    the column's default (true) keeps "area missing = lost" for it."""
    import asyncio
    import sqlite3

    from alembic import command

    from registry.index.migrate import alembic_config

    cfg = _config(tmp_path)
    url = cfg.database_url
    await asyncio.to_thread(command.upgrade, alembic_config(url), "0003_lifecycle")
    kept, lost = "a" * 32, "b" * 32
    with sqlite3.connect(tmp_path / "i.db") as db:
        for upload_id in (kept, lost):
            db.execute("INSERT INTO upload_sessions (id, repository, created_at, updated_at) VALUES (?, ?, 0, 1e12)",
                       (upload_id, "hops/old"))
    app = create_app(cfg)
    client = await aiohttp_client(app)  # the server migrates the index to the head on start
    app[state.UPLOADS].create_now(kept)
    (tmp_path / "data" / "uploads" / kept / "data").write_bytes(b"abc")
    r = await client.get(f"/v2/hops/old/blobs/uploads/{kept}")
    assert r.status == 204 and r.headers["Range"] == "0-2"
    r = await client.get(f"/v2/hops/old/blobs/uploads/{lost}")
    assert r.status == 404 and (await r.json())["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"

"""Faults that are not the client's: a database that is gone or restarting, storage I/O errors
and a full disk answer 503 + Retry-After (or 507) in the envelope, logged at WARNING with the
cause (#13.7, #13.9). Before, a lost database connection (an OSError) was taken for a client
disconnect: `400 BLOB_UPLOAD_INVALID "the request body ended early"`.
"""
from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import subprocess
from contextlib import contextmanager

import pytest
from sqlalchemy.exc import OperationalError

from oci import mediatypes as mt
from oci.digest import Digest
from registry import state
from registry.app import create_app
from registry.config import RegistryConfig
from tests.helpers import need_root
from tests.registry.oci_client import blob, config_blob, image_manifest, push_blob, push_image


@contextmanager
def broken_database(monkeypatch, db, exc: BaseException):
    """Every query fails the way a database that went away fails, on both backends."""
    def fail(*_a, **_k):
        raise exc

    class Gone:
        def connect(self):
            raise exc

        begin = connect

    with monkeypatch.context() as m:
        m.setattr(db, "_sync_read", fail)
        m.setattr(db, "_sync_write", fail)
        if db._reader is None:  # PostgreSQL runs through the async engine
            m.setattr(db, "engine", Gone())
            m.setattr(db.point, "_fetchrow", fail)  # and the hot one-row reads through asyncpg
        yield


async def _unavailable(r, status=503):
    assert r.status == status, (r.status, await r.text())
    if r.method != "HEAD":
        err = (await r.json())["errors"][0]
        assert err["code"] == "UNAVAILABLE" and err["message"]
    if status == 503:
        assert int(r.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError(111, "Connection refused"),
    OperationalError("SELECT 1", {}, ConnectionResetError(104, "Connection reset by peer")),
], ids=["refused", "reset"])
async def test_lost_database_answers_503_with_retry_after(client, monkeypatch, caplog, exc):
    caplog.set_level(logging.WARNING, "registry.api")
    digest, raw = await push_image(client, "f/db", "v1")
    data, data_digest = blob(5000)
    with broken_database(monkeypatch, client.server.app[state.INDEX].db, exc):
        await _unavailable(await client.get("/v2/f/db/manifests/v1"))
        await _unavailable(await client.head(f"/v2/f/db/manifests/{digest}"))
        await _unavailable(await client.get("/v2/f/db/tags/list"))
        await _unavailable(await client.post(f"/v2/f/db/blobs/uploads/?digest={data_digest}", data=data))
        await _unavailable(await client.put("/v2/f/db/manifests/v2", data=raw, headers={"Content-Type": mt.OCI_MANIFEST}))
        await _unavailable(await client.post("/v2/f/db/blobs/uploads/"))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "database unavailable" in r.getMessage()]
    assert len(warnings) >= 6 and type(exc).__name__ in warnings[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # healed: everything works again, nothing was lost
    assert (await client.get("/v2/f/db/manifests/v1")).status == 200
    await push_blob(client, "f/db", data)


@pytest.mark.postgres
async def test_postgres_connections_killed_under_load(postgres_server, postgres_url, aiohttp_client, tmp_path):
    """A real fault: every connection of the registry's database is terminated again and again
    while clients pull and push; each answer is a success or a 503 to retry, never a 4xx/500."""
    config = RegistryConfig(data_dir=str(tmp_path / "data"), database_url=postgres_url).finish()
    client = await aiohttp_client(create_app(config))
    digest, raw = await push_image(client, "f/pg", "v1")
    import asyncpg

    db = postgres_url.rsplit("/", 1)[1]
    kill = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()")
    statuses: list[int] = []
    killed = [0]

    async def killer(stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(host="127.0.0.1", port=postgres_server.port, user="postgres", database="postgres")
        try:
            while not stop.is_set():
                killed[0] += await conn.fetchval(kill, db)
                await asyncio.sleep(0.05)
        finally:
            await conn.close()

    async def pull(i: int) -> None:
        r = await client.get("/v2/f/pg/manifests/v1" if i % 2 else f"/v2/f/pg/tags/list")
        statuses.append(r.status)
        if r.status == 503:
            assert r.headers["Retry-After"]
        else:
            assert r.status == 200, (r.status, await r.text())

    async def push(i: int) -> None:
        data = os.urandom(100 + i)
        r = await client.post(f"/v2/f/pg/blobs/uploads/?digest={Digest.of(data)}", data=data)
        statuses.append(r.status)
        assert r.status in (201, 503), (r.status, await r.text())

    stop = asyncio.Event()
    kills = asyncio.create_task(killer(stop))
    try:
        for round_ in range(3):
            await asyncio.gather(*[pull(i) for i in range(40)], *[push(round_ * 100 + i) for i in range(10)])
    finally:
        stop.set()
        await kills
    assert 400 not in statuses and 500 not in statuses, statuses
    assert killed[0] > 0 and 503 in statuses  # the fault really happened
    assert (await client.get("/v2/f/pg/manifests/v1")).status == 200


async def test_postgres_point_reads_with_every_connection_busy_answer_503(postgres_url, aiohttp_client, tmp_path,
                                                                          monkeypatch):
    """The point-read pool (tag -> manifest on asyncpg) waits a bounded time for a connection,
    then answers 503 + Retry-After; it never leaves a manifest GET hanging."""
    from registry.index import point_reads

    monkeypatch.setattr(point_reads, "ACQUIRE_TIMEOUT", 0.3)
    config = RegistryConfig(data_dir=str(tmp_path / "data"), database_url=postgres_url).finish()
    client = await aiohttp_client(create_app(config))
    await push_image(client, "f/busy", "v1")
    assert (await client.get("/v2/f/busy/manifests/v1")).status == 200  # opens the pool
    reads = client.server.app[state.INDEX].db.point
    pool = reads._pool
    held = [await pool.acquire() for _ in range(point_reads.POOL_MAX)]
    try:
        r = await asyncio.wait_for(client.get("/v2/f/busy/manifests/v1"), 10)
        assert r.status == 503 and r.headers["Retry-After"], (r.status, await r.text())
        assert (await r.json())["errors"][0]["code"] == "UNAVAILABLE"
    finally:
        for conn in held:
            await pool.release(conn)
    assert (await client.get("/v2/f/busy/manifests/v1")).status == 200


@pytest.mark.postgres
async def test_postgres_point_read_on_a_server_that_does_not_answer_is_a_503(postgres_server, postgres_url,
                                                                            aiohttp_client, tmp_path, monkeypatch,
                                                                            caplog):
    """A PostgreSQL that took the statement and never answers (here: the tags table locked by
    another session) costs a manifest GET by tag STATEMENT_TIMEOUT and a 503 + Retry-After, not
    a request hung until TCP gives up; the pooled connection stays usable afterwards."""
    import asyncpg

    from registry.index import point_reads

    monkeypatch.setattr(point_reads, "STATEMENT_TIMEOUT", 0.3)
    config = RegistryConfig(data_dir=str(tmp_path / "data"), database_url=postgres_url).finish()
    client = await aiohttp_client(create_app(config))
    await push_image(client, "f/hung", "v1")
    assert (await client.get("/v2/f/hung/manifests/v1")).status == 200
    db = postgres_url.rsplit("/", 1)[1]
    locker = await asyncpg.connect(host="127.0.0.1", port=postgres_server.port, user="postgres", database=db)
    try:
        tx = locker.transaction()
        await tx.start()
        await locker.execute("LOCK TABLE tags IN ACCESS EXCLUSIVE MODE")
        r = await asyncio.wait_for(client.get("/v2/f/hung/manifests/v1"), 10)
        assert r.status == 503 and r.headers["Retry-After"], (r.status, await r.text())
        assert (await r.json())["errors"][0]["code"] == "UNAVAILABLE"
        assert any("StatementTimedOut" in rec.getMessage() for rec in caplog.records)  # the cause, in the log
        await tx.rollback()
    finally:
        await locker.close()
    for _ in range(point_reads.POOL_MAX + 1):  # every pooled connection answers again
        assert (await client.get("/v2/f/hung/manifests/v1")).status == 200


def _failing_writes(monkeypatch):
    """Files the filesystem driver opens for writing fail as on a full disk."""
    from registry.storage import filesystem

    real_open = open

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, _data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def full_open(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        return Full(f) if any(c in mode for c in "wa+") else f

    monkeypatch.setattr(filesystem, "open", full_open, raising=False)


async def test_full_disk_answers_507_and_leaves_no_tmp_files(client, config, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, "registry.api")
    cfg, _ = config_blob()
    await push_blob(client, "f/full", cfg)
    raw = image_manifest(cfg, [])
    tmp = os.path.join(config.data_dir, "tmp")
    _failing_writes(monkeypatch)
    r = await client.put("/v2/f/full/manifests/v1", data=raw, headers={"Content-Type": mt.OCI_MANIFEST})
    await _unavailable(r, 507)
    assert "storage is full" in (await r.json())["errors"][0]["message"]
    assert os.listdir(tmp) == []
    data, digest = blob(3 << 20)
    await _unavailable(await client.post(f"/v2/f/full/blobs/uploads/?digest={digest}", data=data), 507)
    assert any("No space left" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    monkeypatch.undo()
    r = await client.put("/v2/f/full/manifests/v1", data=raw, headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 201
    assert (await client.get(f"/v2/f/full/blobs/{digest}")).status == 404


async def test_a_really_full_filesystem(aiohttp_client, tmp_path):
    """The same on a real 2 MiB tmpfs (root: mount)."""
    need_root()
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], check=True)
    try:
        config = RegistryConfig(data_dir=str(mnt), database_url=f"sqlite+aiosqlite:///{tmp_path / 'i.db'}").finish()
        client = await aiohttp_client(create_app(config))
        cfg, _ = config_blob()
        await push_blob(client, "f/real", cfg)
        big, big_digest = blob(3 << 20)
        await _unavailable(await client.post(f"/v2/f/real/blobs/uploads/?digest={big_digest}", data=big), 507)
        filler = os.urandom(1 << 20)
        while True:  # fill what is left, the way other pushes would
            r = await client.post(f"/v2/f/real/blobs/uploads/?digest={Digest.of(filler)}", data=filler)
            if r.status == 507:
                break
            assert r.status == 201
            filler = os.urandom(len(filler) // 2 or 1)
        raw = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "layers": [],
                          "annotations": {"pad": "x" * 200_000},
                          "config": {"mediaType": mt.OCI_CONFIG, "digest": str(Digest.of(cfg)), "size": len(cfg)}})
        r = await client.put("/v2/f/real/manifests/v1", data=raw, headers={"Content-Type": mt.OCI_MANIFEST})
        await _unavailable(r, 507)
        assert os.listdir(mnt / "tmp") == []
        await client.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)

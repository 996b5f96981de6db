"""The storage driver contract: every driver in DRIVERS must pass every test here."""
from __future__ import annotations

import os
import time

import pytest

from oci.digest import Digest
from registry.storage.driver import BlobNotFound, DigestMismatch, UploadNotFound
from registry.storage.filesystem import FilesystemDriver
from registry.storage.uploads import UploadSessions


def _filesystem(tmp_path):
    return FilesystemDriver(str(tmp_path / "fs"))


def _s3(tmp_path, request, monkeypatch):
    from registry.storage.s3 import S3Driver
    from registry.storage.s3_settings import parse_s3_settings

    server = request.getfixturevalue("s3_server")
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)  # e.g. AWS_CA_BUNDLE: not meant for the loopback server
    # A fresh prefix per test: also proves that every key stays under it.
    return S3Driver(parse_s3_settings(server.settings(prefix=f"contract-{tmp_path.name}/")))


DRIVERS = {"filesystem": _filesystem, "s3": _s3}


@pytest.fixture(params=sorted(DRIVERS))
async def driver(request, tmp_path, monkeypatch):
    d = _s3(tmp_path, request, monkeypatch) if request.param == "s3" else DRIVERS[request.param](tmp_path)
    await d.open()
    yield d
    await d.close()


async def _chunks(*parts: bytes):
    for p in parts:
        yield p


async def _collect(it) -> bytes:
    return b"".join([b async for b in it])


async def test_put_get_stat_delete(driver):
    data = b"hello blob"
    d = Digest.of(data)
    assert await driver.stat(d) is None
    await driver.put(d, data)
    assert await driver.stat(d) == len(data)
    assert await driver.get(d) == data
    assert await _collect(driver.read(d)) == data
    assert await _collect(driver.read(d, 2, 3)) == data[2:5]
    assert await _collect(driver.read(d, 5)) == data[5:]
    await driver.put(d, data)  # idempotent
    assert await driver.delete(d) is True
    assert await driver.delete(d) is False
    with pytest.raises(BlobNotFound):
        await driver.get(d)
    with pytest.raises(BlobNotFound):
        await _collect(driver.read(d))


async def test_put_verifies_digest(driver):
    with pytest.raises(DigestMismatch):
        await driver.put(Digest.of(b"a"), b"b")
    assert await driver.stat(Digest.of(b"a")) is None
    assert [b async for b in driver.iter_blobs()] == []


async def test_iter_blobs_lists_digest_size_mtime(driver):
    blobs = [os.urandom(n) for n in (1, 10, 100)]
    for b in blobs:
        await driver.put(Digest.of(b), b)
    await driver.put(Digest.of(b"x", "sha512"), b"x")
    found = {str(i.digest): i for i in [b async for b in driver.iter_blobs()]}
    assert set(found) == {str(Digest.of(b)) for b in blobs} | {str(Digest.of(b"x", "sha512"))}
    assert found[str(Digest.of(blobs[2]))].size == 100
    assert abs(found[str(Digest.of(blobs[0]))].mtime - time.time()) < 60


async def test_upload_append_commit(driver):
    await driver.create_upload("a" * 32)
    assert await driver.upload_size("a" * 32) == 0
    size = await driver.append_upload("a" * 32, _chunks(b"abc", b"def"))
    assert size == 6
    size = await driver.append_upload("a" * 32, _chunks(b"g" * (3 << 20)))
    assert size == 6 + (3 << 20)
    data = b"abcdef" + b"g" * (3 << 20)
    assert await _collect(driver.read_upload("a" * 32)) == data
    d = Digest.of(data)
    assert await driver.commit_upload("a" * 32, d) == len(data)
    assert await driver.upload_size("a" * 32) is None
    assert await driver.stat(d) == len(data)


async def test_append_hook_sees_every_byte_in_order(driver):
    seen = []
    await driver.create_upload("b" * 32)
    await driver.append_upload("b" * 32, _chunks(b"1", b"22", b"333"), seen.append)
    assert b"".join(seen) == b"122333"


async def test_append_keeps_bytes_received_before_a_broken_stream(driver):
    async def broken():
        yield b"12345"
        raise ConnectionResetError("client went away")

    await driver.create_upload("c" * 32)
    with pytest.raises(ConnectionResetError):
        await driver.append_upload("c" * 32, broken())
    assert await driver.upload_size("c" * 32) == 5


async def test_commit_of_an_existing_blob_is_stored_once(driver):
    data = b"same"
    d = Digest.of(data)
    for uid in ("d" * 32, "e" * 32):
        await driver.create_upload(uid)
        await driver.append_upload(uid, _chunks(data))
        await driver.commit_upload(uid, d)
    assert [i.digest for i in [b async for b in driver.iter_blobs()]] == [d]
    assert [u async for u in driver.iter_uploads()] == []


async def test_unknown_uploads(driver):
    assert await driver.upload_size("f" * 32) is None
    with pytest.raises(UploadNotFound):
        await driver.append_upload("f" * 32, _chunks(b"x"))
    with pytest.raises(UploadNotFound):
        await driver.commit_upload("f" * 32, Digest.of(b""))
    await driver.delete_upload("f" * 32)  # no error
    with pytest.raises(ValueError):
        await driver.create_upload("../../etc")


async def test_sessions_hash_live_and_after_restart(driver):
    sessions = UploadSessions(driver)
    uid = await sessions.start()
    await sessions.append(uid, _chunks(b"part one "))
    # A fresh manager has no hasher (a restart, or another replica): it re-hashes.
    other = UploadSessions(driver)
    await other.append(uid, _chunks(b"part two"))
    data = b"part one part two"
    with pytest.raises(DigestMismatch):
        await other.finish(uid, Digest.of(b"wrong"))
    assert await other.finish(uid, Digest.of(data, "sha512")) == len(data)
    assert await driver.stat(Digest.of(data, "sha512")) == len(data)


async def test_sessions_live_hasher_is_used(driver, monkeypatch):
    sessions = UploadSessions(driver)
    uid = await sessions.start()
    await sessions.append(uid, _chunks(b"x" * 1000, b"y" * 5000))

    async def no_rehash(*a, **k):
        raise AssertionError("the live hasher should have been used")

    monkeypatch.setattr(sessions, "_rehash", no_rehash)
    assert await sessions.finish(uid, Digest.of(b"x" * 1000 + b"y" * 5000)) == 6000


async def test_delete_older_than_spares_touched_blobs(driver):
    data = b"gc race"
    d = Digest.of(data)
    await driver.put(d, data)
    cutoff = time.time() - 10
    assert await driver.delete(d, older_than=cutoff) is False  # written after the cutoff
    assert await driver.stat(d) == len(data)
    assert await driver.delete(d, older_than=time.time() + 10) is True
    assert await driver.delete(d, older_than=time.time() + 10) is False

"""What the S3 driver promises beyond the shared contract, on a real SeaweedFS with signatures.

Several S3Driver instances on one bucket stand for replicas: each PATCH of one upload goes to
another one, as behind a load balancer without stickiness.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os

import pytest
from aiohttp import web

from oci.digest import Digest
from registry.app import create_app
from registry.config import RegistryConfig
from registry.storage.driver import StorageUnavailable, UploadNotFound
from registry.storage.s3 import S3Driver
from registry.storage.s3_settings import parse_s3_settings
from registry.storage.s3_uploads import MIN_PART
from registry.storage.uploads import UploadSessions
from tests.registry.oci_client import push_blob

MiB = 1 << 20


@pytest.fixture
async def replicas(s3_server, s3_prefix, no_aws):
    drivers = [S3Driver(parse_s3_settings(s3_server.settings(prefix=s3_prefix))) for _ in range(3)]
    for d in drivers:
        await d.open()
    yield drivers
    for d in drivers:
        await d.close()


async def _chunks(*parts: bytes):
    for p in parts:
        yield p


async def _state(driver: S3Driver, upload_id: str) -> dict:
    return json.loads(await driver.read_object(driver.uploads.key(upload_id, "state.json")))


async def test_chunked_upload_across_replicas(replicas, s3_server, s3_prefix):
    sizes = [1000, 3 * MiB, 100, 6 * MiB, 2 * MiB, 9 * MiB + 7, 10, 4 * MiB]
    chunks = [os.urandom(n) for n in sizes]
    data = b"".join(chunks)
    sessions = [UploadSessions(d) for d in replicas]
    uid = await sessions[0].start()
    offset = 0
    for i, chunk in enumerate(chunks):
        here = sessions[i % 3]
        assert await here.size(uid) == offset            # any replica knows the Range
        offset = await here.append(uid, _chunks(chunk[: len(chunk) // 2], chunk[len(chunk) // 2:]))
        assert offset == sum(sizes[: i + 1])
        state = await _state(replicas[(i + 1) % 3], uid)
        parts = (state["mpu"] or {}).get("parts", [])
        assert all(p["size"] >= MIN_PART for p in parts), parts  # S3's rule for non-last parts
        assert sum(p["size"] for p in parts) + sum(o["size"] for o in state["objects"]) == offset
        assert sum(o["size"] for o in state["objects"]) < MIN_PART or len(state["objects"]) == 1
    digest = Digest.of(data)
    # The saved SHA-256 state is resumed by a replica that saw none of the bytes: no re-hash.
    assert await replicas[2].upload_digest(uid, "sha256") == (digest, len(data))
    assert await sessions[1].finish(uid, digest) == len(data)
    assert await replicas[2].get(digest) == data
    keys = s3_server.objects(s3_prefix)
    assert list(keys) == [replicas[0].blob_key(digest)]   # the blob once, no staging left
    assert keys[replicas[0].blob_key(digest)] == len(data)


async def test_small_blobs_are_one_object_and_stored_once(replicas, s3_server, s3_prefix):
    data = b"config" * 100
    d = Digest.of(data)
    for driver in replicas:
        s = UploadSessions(driver)
        uid = await s.start()
        await s.append(uid, _chunks(data))
        await s.finish(uid, d)
    await UploadSessions(replicas[0]).put_whole(d, data)
    assert s3_server.objects(s3_prefix) == {replicas[0].blob_key(d): len(data)}


async def test_read_back_then_append_then_sha512(replicas):
    first, second = os.urandom(6 * MiB + 3), os.urandom(2 * MiB)
    uid = "9" * 32
    await replicas[0].create_upload(uid)
    await replicas[0].append_upload(uid, _chunks(first))
    assert b"".join([b async for b in replicas[1].read_upload(uid)]) == first   # consolidates
    await replicas[2].append_upload(uid, _chunks(second))
    await replicas[0].append_upload(uid, _chunks(b"x"))
    data = first + second + b"x"
    assert await replicas[1].upload_digest(uid, "sha256") == (Digest.of(data), len(data))
    d512 = Digest.of(data, "sha512")
    assert await UploadSessions(replicas[1]).finish(uid, d512) == len(data)
    assert hashlib.sha512(await replicas[0].get(d512)).hexdigest() == d512.hex


async def test_cancel_removes_every_staged_key(replicas, s3_server, s3_prefix):
    uid = "8" * 32
    await replicas[0].create_upload(uid)
    await replicas[1].append_upload(uid, _chunks(os.urandom(9 * MiB)))
    await replicas[2].append_upload(uid, _chunks(b"tail"))
    assert [u for u, _ in [x async for x in replicas[0].iter_uploads()]] == [uid]
    await replicas[0].delete_upload(uid)
    assert s3_server.objects(s3_prefix) == {}
    assert await replicas[1].upload_size(uid) is None
    with pytest.raises(UploadNotFound):
        await replicas[1].append_upload(uid, _chunks(b"x"))


async def test_blob_ranges_stream_from_s3(replicas):
    data = os.urandom(3 * MiB)
    d = Digest.of(data)
    await replicas[0].put(d, data)
    got = b"".join([b async for b in replicas[1].read(d, MiB, 100)])
    assert got == data[MiB:MiB + 100]
    assert b"".join([b async for b in replicas[1].read(d, 3 * MiB - 5)]) == data[-5:]


@pytest.fixture
def small_pieces(monkeypatch):
    """Big-read pieces of 1 MiB (8 MiB in production) so a few MiB exercise every boundary."""
    from registry.storage import s3, s3_reads

    monkeypatch.setattr(s3_reads, "PIECE", MiB)
    monkeypatch.setattr(s3, "PIECE", MiB)


async def test_big_reads_come_in_concurrent_ranged_pieces(replicas, small_pieces):
    from registry.storage.driver import BlobNotFound
    from registry.storage.s3_reads import WINDOW

    data = os.urandom(5 * MiB + 123)
    d = Digest.of(data)
    await replicas[0].put(d, data)
    blocks = [bytes(b) async for b in replicas[1].read(d, 0, len(data))]
    assert b"".join(blocks) == data
    assert max(len(b) for b in blocks) <= MiB
    assert 0 < len(replicas[1].piece_budget.free) <= WINDOW + 1    # the buffers went round
    # A range that starts and ends inside pieces, across several of them.
    got = b"".join([bytes(b) async for b in replicas[2].read(d, MiB - 10, 3 * MiB + 20)])
    assert got == data[MiB - 10:4 * MiB + 10]
    # A reader that stops early leaves nothing running and gives back its room.
    stream = replicas[1].read(d, 0, len(data))
    assert len(await stream.__anext__()) > 0
    await stream.aclose()
    from registry.storage.s3_reads import BUDGET

    assert replicas[1].piece_budget.room._value == BUDGET
    with pytest.raises(BlobNotFound):
        async for _ in replicas[1].read(Digest.of(b"absent"), 0, 3 * MiB):
            pass


# -- failures: a proxy in front of SeaweedFS answers SlowDown / 500 on demand --------------------

class FlakyProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream, self.fail_next, self.always, self.seen = upstream, 0, False, 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        import aiohttp

        self.seen += 1
        if self.always or self.fail_next > 0:
            self.fail_next -= 1
            code, status = ("InternalError", 500) if self.always else ("SlowDown", 503)
            return web.Response(status=status, content_type="application/xml",
                                text=f"<Error><Code>{code}</Code><Message>injected</Message></Error>")
        body = await request.read()
        async with aiohttp.ClientSession(auto_decompress=False) as s:
            async with s.request(request.method, self.upstream + request.path_qs, data=body,
                                 headers={k: v for k, v in request.headers.items() if k.lower() != "content-length"},
                                 allow_redirects=False) as r:
                payload = await r.read()
                drop = ("transfer-encoding", "content-encoding") + (() if request.method == "HEAD" else ("content-length",))
                headers = {k: v for k, v in r.headers.items() if k.lower() not in drop}
                if request.method == "HEAD":
                    return web.Response(status=r.status, headers=headers)
                return web.Response(status=r.status, body=payload, headers=headers)


@pytest.fixture
async def flaky(aiohttp_server, s3_server):
    proxy = FlakyProxy(s3_server.endpoint)
    app = web.Application(client_max_size=1 << 30)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    server = await aiohttp_server(app)
    proxy.endpoint = f"http://127.0.0.1:{server.port}"
    return proxy


async def test_slowdown_is_retried_then_a_503_envelope(flaky, s3_server, s3_prefix, no_aws, aiohttp_client, tmp_path):
    settings = s3_server.settings(prefix=s3_prefix, endpoint=flaky.endpoint, retries=2)
    driver = S3Driver(parse_s3_settings(settings))
    await driver.open()
    try:
        flaky.fail_next = 2                      # two SlowDowns, then through: retried, works
        await driver.put(Digest.of(b"ok"), b"ok")
        assert await driver.stat(Digest.of(b"ok")) == 2
        flaky.always, before = True, flaky.seen   # persists: reported, after the retries
        with pytest.raises(StorageUnavailable):
            await driver.stat(Digest.of(b"ok"))
        assert flaky.seen - before == 3   # the call and its 2 retries
    finally:
        await driver.close()
    flaky.always = False
    await _big_reads_retry_then_fail(flaky, settings)
    cfg = RegistryConfig(data_dir=str(tmp_path / "data"), storage={**settings, "retries": 1}).finish()
    client = await aiohttp_client(create_app(cfg))
    digest = await push_blob(client, "flaky/repo", b"layer bytes")
    flaky.always = True
    for method in ("GET", "HEAD"):
        r = await client.request(method, f"/v2/flaky/repo/blobs/{digest}")
        assert r.status == 503 and r.headers["Retry-After"] == "1"
    r = await client.post("/v2/flaky/repo/blobs/uploads/")
    assert r.status == 503
    body = await r.json()
    assert body["errors"][0]["code"] == "UNAVAILABLE" and "storage unavailable" in body["errors"][0]["message"]


async def _big_reads_retry_then_fail(flaky, settings) -> None:
    """The ranged GETs of big reads have their own retries (they bypass botocore's)."""
    from registry.storage import s3, s3_reads

    data = os.urandom(3 * MiB)
    d = Digest.of(data)
    driver = S3Driver(parse_s3_settings(settings))
    await driver.open()
    saved = s3_reads.PIECE, s3.PIECE
    s3_reads.PIECE = s3.PIECE = MiB
    try:
        await driver.put(d, data)
        flaky.fail_next = 1                    # one SlowDown on a piece: retried, works
        assert b"".join([bytes(b) async for b in driver.read(d, 0, len(data))]) == data
        flaky.always = True
        with pytest.raises(StorageUnavailable):
            async for _ in driver.read(d, 0, len(data)):
                pass
    finally:
        s3_reads.PIECE, s3.PIECE = saved
        flaky.always = False
        await driver.close()


async def test_redirect_gives_a_presigned_url_that_serves_the_bytes(s3_server, s3_prefix, no_aws, aiohttp_client, tmp_path):
    import aiohttp

    cfg = RegistryConfig(data_dir=str(tmp_path / "data"),
                         storage=s3_server.settings(prefix=s3_prefix, redirect="true")).finish()
    client = await aiohttp_client(create_app(cfg))
    data = os.urandom(70000)
    digest = await push_blob(client, "redir/repo", data)
    r = await client.get(f"/v2/redir/repo/blobs/{digest}", allow_redirects=False)
    assert r.status == 307 and r.headers["Docker-Content-Digest"] == digest
    location = r.headers["Location"]
    assert location.startswith(s3_server.endpoint + f"/{s3_server.bucket}/{s3_prefix}blobs/sha256/")
    async with aiohttp.ClientSession() as s, s.get(location) as got:
        assert got.status == 200 and await got.read() == data
    r = await client.head(f"/v2/redir/repo/blobs/{digest}")
    assert r.status == 200 and r.headers["Content-Length"] == str(len(data))   # HEAD is answered here
    r = await client.get(f"/v2/redir/repo/blobs/{digest}", headers={"Range": "bytes=10-19"}, allow_redirects=False)
    assert r.status == 307


async def test_api_post_then_put_with_body_is_one_put_and_leaves_no_staging(s3_server, s3_prefix, no_aws,
                                                                           aiohttp_client, tmp_path):
    cfg = RegistryConfig(data_dir=str(tmp_path / "data"), storage=s3_server.settings(prefix=s3_prefix)).finish()
    client = await aiohttp_client(create_app(cfg))
    data = os.urandom(4096)
    r = await client.post("/v2/small/repo/blobs/uploads/")
    assert r.status == 202
    r = await client.put(f"{r.headers['Location']}?digest={Digest.of(data)}", data=data)
    assert r.status == 201
    bad = await client.post(f"/v2/small/repo/blobs/uploads/?digest={Digest.of(b'other')}", data=data)
    assert bad.status == 400 and (await bad.json())["errors"][0]["code"] == "DIGEST_INVALID"
    r = await client.get(f"/v2/small/repo/blobs/{Digest.of(data)}")
    assert r.status == 200 and await r.read() == data
    blob = f"{s3_prefix}blobs/sha256/{Digest.of(data).hex[:2]}/{Digest.of(data).hex}"
    # The session's state goes in a batched delete a moment after the 201 (s3_deletes.DELAY).
    deadline = asyncio.get_running_loop().time() + 5
    while list(s3_server.objects(s3_prefix)) != [blob] and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert list(s3_server.objects(s3_prefix)) == [blob]


async def test_commit_after_a_patch_that_failed_right_after_creating_the_multipart_upload(replicas, s3_server,
                                                                                        s3_prefix):
    from registry.storage.s3_uploads import _Writer

    uid = "7" * 32
    d = replicas[0]
    await d.create_upload(uid)
    await _Writer(d.uploads, uid, await d.uploads.load(uid))._ensure_mpu()   # then the part upload failed
    await replicas[1].append_upload(uid, _chunks(b"small retry"))
    digest = Digest.of(b"small retry")
    assert await replicas[2].upload_digest(uid, "sha256") == (digest, 11)
    await replicas[2].commit_upload(uid, digest)
    assert await d.get(digest) == b"small retry"
    assert list(s3_server.objects(s3_prefix)) == [d.blob_key(digest)]
    listed = await d.call("list_multipart_uploads", Prefix=f"{s3_prefix}uploads/")
    assert not listed.get("Uploads")


async def test_a_multipart_upload_left_by_a_discarded_session_is_listed_then_aborted(replicas, s3_server, s3_prefix):
    """A first PATCH creates the multipart upload, records it, then dies; the client finishes
    with POST + PUT-with-body, so the session is discarded as empty: its multipart upload must
    not wait for a bucket rule. The upload expiry sees it through iter_uploads and cancels it."""
    from registry.storage.s3_uploads import _Writer

    uid = "6" * 32
    d = replicas[0]
    await d.create_upload(uid)
    await _Writer(d.uploads, uid, await d.uploads.load(uid))._ensure_mpu()
    await replicas[1].discard_empty_upload(uid)
    await replicas[1].deferred_deletes.flush()
    assert s3_server.objects(s3_prefix) == {}          # no object names the session any more
    assert [u for u, _ in [x async for x in replicas[2].iter_uploads()]] == [uid]
    await replicas[2].delete_upload(uid)
    listed = await d.call("list_multipart_uploads", Prefix=f"{s3_prefix}uploads/")
    assert not listed.get("Uploads")
    assert [x async for x in replicas[2].iter_uploads()] == []


@pytest.mark.parametrize("sign", [False, True])
async def test_payload_signing_is_a_setting_and_both_pass_the_signature_check(s3_server, s3_prefix, no_aws, sign):
    """Off by default: no SHA-256 of every body on the event loop (the blob digest is verified
    by the registry); on, the body's hash is in the signature. SeaweedFS checks both."""
    driver = S3Driver(parse_s3_settings(s3_server.settings(prefix=s3_prefix, sign_payload=sign)))
    await driver.open()
    seen: list[str] = []
    driver.client.meta.events.register("before-send.s3.PutObject",
                                       lambda request, **_: seen.append(request.headers["X-Amz-Content-SHA256"]))
    try:
        data = os.urandom(1000)
        await driver.put(Digest.of(data), data)
        assert await driver.get(Digest.of(data)) == data
    finally:
        await driver.close()
    expected = hashlib.sha256(data).hexdigest() if sign else "UNSIGNED-PAYLOAD"
    assert [v if isinstance(v, str) else v.decode() for v in seen] == [expected]


def test_big_reads_leave_proxied_endpoints_to_botocore(monkeypatch):
    """The ranged reads' own HTTP client knows no proxies: with one configured for the endpoint
    the driver keeps its reads on aiobotocore (which applies it)."""
    from registry.storage.s3_reads import needs_proxy

    for key in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(key, raising=False)
    assert not needs_proxy("http://s3.internal:8333")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
    assert needs_proxy("http://s3.internal:8333") and needs_proxy("")
    monkeypatch.setenv("NO_PROXY", "s3.internal")
    assert not needs_proxy("http://s3.internal:8333")


@pytest.mark.parametrize("sizes", [(2000, 3000), (6 * MiB, 3000)])
async def test_racing_patches_leave_a_session_whose_bytes_match_its_digest(replicas, sizes):
    """Two PATCHes of one session at once on two replicas (a protocol violation a hostile client
    can commit): whichever state wins, the committed blob's bytes are the bytes its digest says."""
    uid = "5" * 32
    base = os.urandom(1000)
    await replicas[0].create_upload(uid)
    await replicas[0].append_upload(uid, _chunks(base))
    a, b = os.urandom(sizes[0]), os.urandom(sizes[1])
    await asyncio.gather(replicas[1].append_upload(uid, _chunks(a)), replicas[2].append_upload(uid, _chunks(b)))
    digest, size = await replicas[0].upload_digest(uid, "sha256")
    assert (digest, size) in {(Digest.of(base + a), 1000 + len(a)), (Digest.of(base + b), 1000 + len(b))}
    await replicas[0].commit_upload(uid, digest)
    stored = await replicas[1].get(digest)
    assert Digest.of(stored) == digest
    await replicas[0].delete_upload(uid)    # the loser's staging is listed and removed too
    assert [x async for x in replicas[0].iter_uploads()] == []

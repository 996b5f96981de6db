"""Pull through a fake registry that misbehaves on purpose: a download cut midway is resumed
with Range, corrupt bytes and a wrong diff_id are refused and leave nothing visible, and the
store then answers lookups and rmi as docker does."""
from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import signal
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard
from aiohttp import web

from node.images.errors import DigestMismatch, ImageError, ImageNotFound
from node.images.pull import pull_async
from node.images.store import ImageStore
from oci import mediatypes as mt
from oci.digest import Digest
from tests.helpers import need_root


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class FakeRegistry:
    """One repository `test/img`, tag `1`; blobs served with Range support and fault knobs."""

    def __init__(self, wrong_diff_id: bool = False) -> None:
        big = layer_tar({"big.bin": os.urandom(3 << 20)})
        small = layer_tar({"etc/hello": b"hello\n"})
        self.layers = [(gzip.compress(big, mtime=0), mt.OCI_LAYER_GZIP, big),
                       (zstandard.ZstdCompressor().compress(small), mt.OCI_LAYER_ZSTD, small)]
        diff_ids = [str(Digest.of(raw)) for _, _, raw in self.layers]
        if wrong_diff_id:
            diff_ids[1] = str(Digest.of(b"not this"))
        self.config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
                                  "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
        self.blobs = {str(Digest.of(self.config)): self.config}
        self.blobs.update({str(Digest.of(blob)): blob for blob, _, _ in self.layers})
        self.manifest = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                                    "config": {"mediaType": mt.OCI_CONFIG, "digest": str(Digest.of(self.config)),
                                               "size": len(self.config)},
                                    "layers": [{"mediaType": t, "digest": str(Digest.of(b)), "size": len(b)}
                                               for b, t, _ in self.layers]}).encode()
        self.big_digest = str(Digest.of(self.layers[0][0]))
        self.cut_first = False
        self.corrupt = False
        self.slow = False
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []  # (digest, Range header)

    async def manifest_handler(self, request: web.Request) -> web.Response:
        return web.Response(body=self.manifest, content_type=mt.OCI_MANIFEST,
                            headers={"Docker-Content-Digest": str(Digest.of(self.manifest))})

    async def blob_handler(self, request: web.Request) -> web.StreamResponse:
        digest = request.match_info["digest"]
        data = self.blobs.get(digest)
        if data is None:
            return web.Response(status=404)
        rng = request.headers.get("Range")
        self.requests.append((digest, rng))
        if self.ignore_range:  # a server (or proxy) that always sends the whole blob
            rng = None
        if self.corrupt and digest == self.big_digest:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        resp = web.StreamResponse(status=206 if rng else 200)
        resp.content_length = len(data) - start
        if rng:
            resp.headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        await resp.prepare(request)
        if self.cut_first and digest == self.big_digest and not rng:
            self.cut_first = False
            await resp.write(data[: len(data) // 3])
            request.transport.close()  # the connection breaks mid-body
            return resp
        if self.slow:  # ~1 s per MiB: time for the test to kill the puller mid-body
            for i in range(start, len(data), 64 << 10):
                await resp.write(data[i:i + (64 << 10)])
                await asyncio.sleep(0.06)
        else:
            await resp.write(data[start:])
        await resp.write_eof()
        return resp

    def app(self) -> web.Application:
        app = web.Application()
        async def ping(request: web.Request) -> web.Response:
            return web.json_response({})

        app.router.add_get("/v2/", ping)
        app.router.add_get("/v2/test/img/manifests/{ref}", self.manifest_handler)
        app.router.add_get("/v2/test/img/blobs/{digest}", self.blob_handler)
        return app


async def start(aiohttp_server, fake: FakeRegistry) -> str:
    server = await aiohttp_server(fake.app(), host="127.0.0.1")
    return f"127.0.0.1:{server.port}"


async def test_cut_download_is_resumed_with_range(aiohttp_server, tmp_path):
    need_root()
    fake = FakeRegistry()
    fake.cut_first = True
    host = await start(aiohttp_server, fake)
    image = await pull_async(tmp_path, f"{host}/test/img:1", None, True, io.StringIO())
    big = [rng for d, rng in fake.requests if d == fake.big_digest]
    assert big[0] is None and big[1] is not None and big[1].startswith("bytes=") and big[1] != "bytes=0-"
    dirs = image.layer_dirs()
    assert (dirs[0] / "big.bin").stat().st_size == 3 << 20
    assert (dirs[1] / "etc" / "hello").read_bytes() == b"hello\n"  # the zstd layer
    # pulled again: nothing is fetched
    before = len(fake.requests)
    await pull_async(tmp_path, f"{host}/test/img:1", None, True, io.StringIO())
    assert len(fake.requests) == before


async def test_corrupt_blob_is_refused_and_nothing_is_visible(aiohttp_server, tmp_path):
    need_root()
    fake = FakeRegistry()
    fake.corrupt = True
    host = await start(aiohttp_server, fake)
    with pytest.raises(DigestMismatch, match="failed verification"):
        await pull_async(tmp_path, f"{host}/test/img:1", None, True, io.StringIO())
    store = ImageStore(tmp_path)
    assert store.list() == []
    assert not store.content.has_blob(Digest.parse(fake.big_digest))
    visible = [p for p in store.content.snapshots.glob("*") if not p.name.startswith(".")]
    assert all(store.content.has_snapshot(Digest("sha256", p.name)) for p in visible)


async def test_wrong_diff_id_leaves_no_snapshot(aiohttp_server, tmp_path):
    need_root()
    fake = FakeRegistry(wrong_diff_id=True)
    host = await start(aiohttp_server, fake)
    with pytest.raises(DigestMismatch, match="diff_id"):
        await pull_async(tmp_path, f"{host}/test/img:1", None, True, io.StringIO())
    store = ImageStore(tmp_path)
    assert store.list() == []
    names = [p.name for p in store.content.snapshots.iterdir()]
    assert not any(n.startswith(".tmp") for n in names)  # the failed unpack left no temp dir
    assert all(store.content.has_snapshot(Digest("sha256", n)) for n in names)  # only complete ones


async def test_lookup_tag_and_rmi(aiohttp_server, tmp_path):
    need_root()
    fake = FakeRegistry()
    host = await start(aiohttp_server, fake)
    image = await pull_async(tmp_path, f"{host}/test/img:1", None, True, io.StringIO())
    store = ImageStore(str(tmp_path))
    manifest_digest = str(Digest.of(fake.manifest))
    for ref in (f"{host}/test/img:1", f"{host}/test/img@{manifest_digest}", image.id, image.id[7:19],
                image.id[7:], manifest_digest):
        assert store.get(ref).id == image.id, ref
    with pytest.raises(ImageNotFound):
        store.get(f"{host}/test/img:2")
    with pytest.raises(ImageNotFound):
        store.get("0000deadbeef")
    store.tag(f"{host}/test/img:1", "local/copy:9")
    assert store.get("local/copy:9").repo_tags == [f"{host}/test/img:1", "local/copy:9"]
    # in use by a container: refused without -f; with -f untagged but the bytes stay
    with pytest.raises(ImageError, match="referenced in multiple repositories"):
        store.remove(image.id)
    assert store.remove("local/copy:9") == ["Untagged: local/copy:9"]
    with pytest.raises(ImageError, match="being used by a container"):
        store.remove(f"{host}/test/img:1", force=False, in_use={image.id})
    store.remove(image.id, force=True, in_use={image.id})
    assert store.get(image.id).repo_tags == [] and all(d.is_dir() for d in image.layer_dirs())
    lines = store.remove(image.id)
    assert lines[-1] == f"Deleted: {image.id}"
    assert store.list() == [] and not any(store.content.snapshots.iterdir())


async def test_killed_pull_leaves_nothing_visible_then_resumes(aiohttp_server, tmp_path):
    """kill -9 during a download: no image, no snapshot of that layer; the next pull resumes the
    partial file with Range and completes."""
    need_root()
    fake = FakeRegistry()
    fake.slow = True
    host = await start(aiohttp_server, fake)
    dockyard = Path(sys.executable).parent / "dockyard"
    proc = await asyncio.create_subprocess_exec(str(dockyard), "--root", str(tmp_path), "pull", "-q",
                                                f"{host}/test/img:1", stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    part = tmp_path / "images" / "content" / "ingest" / f"{Digest.parse(fake.big_digest).hex}.part"
    for _ in range(600):
        if part.exists() and part.stat().st_size > (512 << 10):
            break
        await asyncio.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    store = ImageStore(tmp_path)
    assert store.list() == []
    assert not store.content.has_blob(Digest.parse(fake.big_digest))
    big_chain = Digest.of(fake.layers[0][2])  # chain ID of the bottom layer is its diff_id
    assert not store.content.has_snapshot(big_chain) and not store.content.snapshot_dir(big_chain).exists()
    kept = part.stat().st_size
    fake.slow = False
    image = await pull_async(tmp_path, f"{host}/test/img:1", None, True, io.StringIO())
    assert fake.requests[-1] == (fake.big_digest, f"bytes={kept}-") or \
        (fake.big_digest, f"bytes={kept}-") in fake.requests
    assert (image.layer_dirs()[0] / "big.bin").stat().st_size == 3 << 20


async def test_disk_full_is_one_clear_error(aiohttp_server, tmp_path):
    need_root()
    fake = FakeRegistry()
    host = await start(aiohttp_server, fake)
    small = tmp_path / "small"
    small.mkdir()
    r = await asyncio.create_subprocess_exec("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small))
    assert await r.wait() == 0
    try:
        with pytest.raises(ImageError, match="no space left on device"):
            await pull_async(small, f"{host}/test/img:1", None, True, io.StringIO())
        assert ImageStore(small).list() == []
    finally:
        r = await asyncio.create_subprocess_exec("umount", str(small))
        await r.wait()


async def test_retry_answered_from_byte_zero_still_pulls_the_right_bytes(aiohttp_server, tmp_path):
    """A server (or proxy) that ignores Range on the retry sends the whole blob again with 200:
    the partial file is rewritten from the start, not appended to."""
    need_root()
    fake = FakeRegistry()
    fake.cut_first = True
    fake.ignore_range = True
    host = await start(aiohttp_server, fake)
    image = await pull_async(tmp_path, f"{host}/test/img:1", None, True, io.StringIO())
    big = [rng for d, rng in fake.requests if d == fake.big_digest]
    assert len(big) == 2 and big[1] is not None, "the retry asked for the rest with Range"
    with tarfile.open(fileobj=io.BytesIO(fake.layers[0][2])) as tar:
        expected = tar.extractfile("big.bin").read()
    assert (image.layer_dirs()[0] / "big.bin").read_bytes() == expected
    assert (image.layer_dirs()[1] / "etc" / "hello").read_bytes() == b"hello\n"


async def test_the_sweep_removes_killed_unpacks_temp_dirs_not_live_ones(aiohttp_server, tmp_path):
    """A `.tmp-<chain>-<pid>` left by a killed unpack is never a snapshot; the store's sweep
    (rmi, prune) removes it, unless a live unpack holds that snapshot's lock."""
    need_root()
    import fcntl
    fake = FakeRegistry()
    host = await start(aiohttp_server, fake)
    await pull_async(tmp_path, f"{host}/test/img:1", None, True, io.StringIO())
    store = ImageStore(tmp_path)
    stale = store.content.snapshots / f".tmp-{'cd' * 32}-999999"
    (stale / "fs" / "usr").mkdir(parents=True)
    (stale / "fs" / "usr" / "half").write_bytes(b"x" * 1000)
    live = store.content.snapshots / f".tmp-{'ab' * 32}-1"
    (live / "fs").mkdir(parents=True)
    fd = os.open(store.content.locks / f"snap-{'ab' * 32}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        store.collect()
    finally:
        os.close(fd)
    assert not stale.exists() and live.is_dir()
    assert len(store.list()) == 1 and all(d.is_dir() for d in store.list()[0].layer_dirs())

"""node.images.layerpipe.ChunkPipe: a download's chunks read in order by an unpacking thread,
bounded, and either side can stop without leaving the other waiting."""
from __future__ import annotations

import asyncio
import gzip
import io
import os
import tarfile
import threading

import pytest

from node.images.layerpipe import ChunkPipe, PipeAborted
from node.images.unpack import unpack_layer
from oci.digest import Digest


def _reader(pipe: ChunkPipe, out: list, size: int = 7):
    def run():
        try:
            while piece := pipe.read(size):
                out.append(piece)
        except PipeAborted as e:
            out.append(e)
    t = threading.Thread(target=run)
    t.start()
    return t


async def test_bytes_arrive_in_order_and_end_at_close():
    pipe = ChunkPipe(asyncio.get_running_loop())
    out: list = []
    t = _reader(pipe, out)
    data = os.urandom(1000)
    for i in range(0, len(data), 33):
        await pipe.feed(data[i:i + 33])
    pipe.close()
    await asyncio.to_thread(t.join)
    assert b"".join(out) == data


async def test_readinto_and_peek_head_across_tiny_chunks():
    pipe = ChunkPipe(asyncio.get_running_loop())
    for piece in (b"\x1f", b"\x8b", b"\x08", b"\x00rest"):
        await pipe.feed(piece)
    pipe.close()
    assert pipe.peek_head(4) == b"\x1f\x8b\x08\x00"
    buf = bytearray(100)
    got = b""
    while n := pipe.readinto(memoryview(buf)):
        got += bytes(buf[:n])
    assert got == b"\x1f\x8b\x08\x00rest"


async def test_a_feed_over_the_limit_returns_once_the_reader_drains():
    pipe = ChunkPipe(asyncio.get_running_loop(), limit=100)
    blocked = asyncio.ensure_future(pipe.feed(b"y" * 150))
    await asyncio.sleep(0.05)
    assert not blocked.done(), "more than the limit queued: feed waits"
    assert await asyncio.to_thread(pipe.read, 150) == b"y" * 150
    await asyncio.wait_for(blocked, 2)


async def test_abort_wakes_the_reader_with_pipe_aborted():
    pipe = ChunkPipe(asyncio.get_running_loop())
    out: list = []
    t = _reader(pipe, out)
    await pipe.feed(b"abc")
    await asyncio.sleep(0.02)
    pipe.abort()
    await asyncio.to_thread(t.join, 2)
    assert not t.is_alive() and isinstance(out[-1], PipeAborted)


async def test_abort_after_close_changes_nothing():
    pipe = ChunkPipe(asyncio.get_running_loop())
    await pipe.feed(b"abc")
    pipe.close()
    pipe.abort()
    assert pipe.read(10) == b"abc" and pipe.read(10) == b""


async def test_a_reader_that_left_never_blocks_the_feeder():
    pipe = ChunkPipe(asyncio.get_running_loop(), limit=10)
    blocked = asyncio.ensure_future(pipe.feed(b"z" * 50))
    await asyncio.sleep(0.02)
    assert not blocked.done()
    pipe.leave()
    await asyncio.wait_for(blocked, 2)
    await asyncio.wait_for(pipe.feed(b"z" * 50), 1)  # dropped at once


async def test_a_gzip_layer_unpacks_straight_from_the_pipe(tmp_path):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = os.urandom(3 << 20)
        info = tarfile.TarInfo("d/big.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    blob = gzip.compress(raw.getvalue())
    pipe = ChunkPipe(asyncio.get_running_loop(), limit=1 << 20)
    (tmp_path / "fs").mkdir()
    unpacking = asyncio.ensure_future(asyncio.to_thread(unpack_layer, pipe, tmp_path / "fs",
                                                        Digest.of(raw.getvalue())))
    for i in range(0, len(blob), 100_000):
        await pipe.feed(blob[i:i + 100_000])
    pipe.close()
    result = await asyncio.wait_for(unpacking, 10)
    assert result.diff_id == Digest.of(raw.getvalue())
    assert (tmp_path / "fs" / "d" / "big.bin").read_bytes() == data


def test_peek_head_after_a_read_is_refused():
    loop = asyncio.new_event_loop()
    try:
        pipe = ChunkPipe(loop)
        loop.run_until_complete(pipe.feed(b"abcdef"))
        pipe.read(2)
        with pytest.raises(ValueError):
            pipe.peek_head(4)
    finally:
        loop.close()

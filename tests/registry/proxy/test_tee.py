"""The blob tee's pace: a client that is slower than the upstream but keeps reading is streamed
every byte as it arrives (the fill waits for it), instead of being dropped to read the rest
from storage after the whole blob is committed — what made cold pulls on a loaded machine
stall once per layer."""
from __future__ import annotations

import asyncio
import logging
import os

from tests.registry.oci_client import push_blob
from tests.registry.proxy.test_pull_through import _settled


async def test_a_client_slower_than_the_upstream_is_streamed_not_dropped(setup, caplog):
    data = os.urandom(24 << 20)  # more than a client queue (4 MiB) and the socket buffers hold
    digest = await push_blob(setup.upstream, "lib/paced", data)
    from registry import state

    storage = setup.app[state.STORAGE]
    real_read, reads = storage.read, []

    def read(d, *a, **k):  # how a client dropped from the stream gets the rest
        reads.append(str(d))
        return real_read(d, *a, **k)

    storage.read = read
    with caplog.at_level(logging.INFO, "registry.proxy"):
        r = await setup.client.get(f"/v2/up/lib/paced/blobs/{digest}")
        assert r.status == 200
        got = bytearray()
        while chunk := await r.content.read(128 << 10):
            got += chunk
            await asyncio.sleep(0.01)  # much slower than the in-process upstream, never stalled
    assert bytes(got) == data
    assert digest not in reads, "the client was dropped from the stream and read the rest from storage"
    assert not [m for m in caplog.messages if "reads the rest from storage" in m], caplog.messages
    assert setup.faulty.gets(digest) == 1


def _hold_disk(storage):
    """Make the storage driver's appends wait for ``release`` before writing a byte; returns
    (release, wrote) events: the disk of the cache is as slow as the test wants."""
    real_append = storage.append_upload
    release, wrote = asyncio.Event(), asyncio.Event()

    async def append_upload(upload_id, chunks, hook=None):
        async def held():
            await release.wait()
            async for chunk in chunks:
                yield chunk
        try:
            return await real_append(upload_id, held(), hook=hook)
        finally:
            wrote.set()

    storage.append_upload = append_upload
    return release, wrote


async def test_the_stream_ends_when_the_upstream_does_not_when_the_disk_does(setup):
    """The digest is verified as the bytes arrive, so a client that kept up has the whole blob
    while the cache is still writing it (the disk used to be on every cold blob's critical
    path); the blob is committed and served from the cache once the writes are done."""
    data = os.urandom(6 << 20)  # fits the fill's disk queue (8 x 2 MiB) while the disk is held
    digest = await push_blob(setup.upstream, "lib/ahead", data)
    from registry import state
    from oci.digest import Digest

    storage = setup.app[state.STORAGE]
    release, wrote = _hold_disk(storage)
    r = await setup.client.get(f"/v2/up/lib/ahead/blobs/{digest}")
    assert r.status == 200
    assert await asyncio.wait_for(r.read(), 10) == data  # before a byte reached the disk
    assert not wrote.is_set() and await storage.stat(Digest.parse(digest)) is None
    release.set()
    await asyncio.wait_for(wrote.wait(), 10)
    await _settled(setup)
    assert await storage.stat(Digest.parse(digest)) is not None
    setup.faulty.reset_counts()
    r = await setup.client.get(f"/v2/up/lib/ahead/blobs/{digest}")
    assert r.status == 200 and await r.read() == data
    assert setup.faulty.gets(digest) == 0  # served from the cache


async def test_a_disk_that_fails_after_the_stream_ended_leaves_nothing_stored(setup):
    """The client got every verified byte; the cache's write then fails: nothing is committed
    or linked, and the next pull fetches the blob again."""
    data = os.urandom(3 << 20)
    digest = await push_blob(setup.upstream, "lib/diskfull", data)
    from registry import state
    from oci.digest import Digest

    storage = setup.app[state.STORAGE]
    real_append = storage.append_upload
    release, _ = _hold_disk(storage)
    held_append = storage.append_upload

    async def failing(upload_id, chunks, hook=None):
        await held_append(upload_id, chunks, hook=hook)
        raise OSError(28, "No space left on device")

    storage.append_upload = failing
    r = await setup.client.get(f"/v2/up/lib/diskfull/blobs/{digest}")
    assert r.status == 200 and await asyncio.wait_for(r.read(), 10) == data
    release.set()
    await _settled(setup)
    assert await storage.stat(Digest.parse(digest)) is None
    storage.append_upload = real_append
    setup.faulty.reset_counts()
    r = await setup.client.get(f"/v2/up/lib/diskfull/blobs/{digest}")
    assert r.status == 200 and await r.read() == data
    assert setup.faulty.gets(digest) == 1

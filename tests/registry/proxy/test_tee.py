"""The blob tee's pace: a client that is slower than the upstream but keeps reading is streamed
every byte as it arrives (the fill waits for it), instead of being dropped to read the rest
from storage after the whole blob is committed — what made cold pulls on a loaded machine
stall once per layer."""
from __future__ import annotations

import asyncio
import logging
import os

from tests.registry.oci_client import push_blob


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

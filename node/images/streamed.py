"""One layer of a pull: downloaded and unpacked at the same time, published in the safe order.

The download (client.fetch_blob, event loop) tees each chunk it receives into a ChunkPipe
(layerpipe.py); a thread unpacks the pipe into a temporary snapshot dir
(ContentStore.unpack_streamed) meanwhile, so the inflate, the diff_id hash and the writes of
the snapshot's files overlap the transfer instead of following it, and the blob is never read
back from disk.

The order that keeps a crash or a hostile registry from leaving a layer that claims to be
complete but is not is the one the unstreamed path has:

1. the blob is verified (size and digest of every byte) and committed: fsynced, renamed under
   its digest, its directory fsynced (ContentStore.commit_file);
2. the snapshot's diff_id (sha256 of the uncompressed tar) matched the config's, and every
   entry passed the extractor's checks (unpack.py);
3. only then is the temp dir renamed to its chain ID (the name ``has_snapshot`` trusts) and
   the snapshots dir fsynced; the image record comes after every layer (pull.py).

A failure of 1 discards the unpacked dir whatever 2 found, so errors read as before (a corrupt
blob is a digest mismatch, not a tar error). When the tee cannot see the whole blob from its
first byte (a resumed ingest file, a retry after a dropped connection, another process holding
the snapshot's lock or having stored the blob) nothing is published from the stream: the
caller unpacks from the committed blob as before (returns False).
"""
from __future__ import annotations

import asyncio
from concurrent.futures import Executor

from oci.digest import Digest

from .client import Progress, RegistryClient
from .content import ContentStore, PendingSnapshot
from .layerpipe import ChunkPipe, PipeAborted


async def fetch_and_unpack(client: RegistryClient, content: ContentStore, repo: str, digest: Digest,
                           size: int, diff_id: Digest, chain_id: Digest, unpackers: Executor,
                           progress: Progress | None = None) -> bool:
    """Download blob ``digest`` into ``content`` and unpack it as snapshot ``chain_id``.
    True: the snapshot is published; False: only the blob is stored (the caller unpacks it)."""
    loop = asyncio.get_running_loop()
    pipe = ChunkPipe(loop)
    unpacking = loop.run_in_executor(unpackers, _unpack, content, pipe, digest, diff_id, chain_id)
    try:
        await client.fetch_blob(repo, digest, size, content, progress, tee=pipe)
    except BaseException:
        pipe.abort()
        await asyncio.wait([unpacking])
        if not unpacking.cancelled() and unpacking.exception() is None and unpacking.result() is not None:
            await asyncio.to_thread(unpacking.result().discard)
        raise
    pending = await unpacking  # an invalid layer raises here, as its unpack from the blob would
    if pending is None:
        return False
    await asyncio.to_thread(pending.publish)
    return True


def _unpack(content: ContentStore, pipe: ChunkPipe, digest: Digest, diff_id: Digest,
            chain_id: Digest) -> PendingSnapshot | None:
    try:
        return content.unpack_streamed(pipe, digest, diff_id, chain_id)
    except PipeAborted:
        return None
    finally:
        pipe.leave()  # the download never waits on a reader that stopped

"""Blobs through the cache: one upstream GET per blob, streamed to every waiting client while
it is stored (a tee in bounded memory).

A ``BlobFetch`` owns the upstream response and runs in its own task (a client that hangs up does
not stop the cache from filling). Each chunk goes to the storage driver's upload staging (hashed
as it is written) and to the queue of every client subscribed so far. Memory stays bounded:

- a fill holds one ``WRITE_BATCH`` (2 MiB) being gathered, ``DISK_QUEUE`` (8) more waiting
  for the disk, the driver at most two and the hashing thread at most one (about 24 MiB);
- a client's queue holds at most ``MAX_QUEUED`` chunks; a client that falls further behind (or
  one that arrives after the first bytes went by) stops getting chunks and, once the blob is
  committed, reads the rest from storage at its own offset;
- the last chunk is held back until the digest is verified, so no client ever receives a
  complete but wrong blob: on a mismatch the connections are cut short and nothing is stored.
  The digest is computed as the bytes arrive from the upstream, not as they reach the disk:
  clients that kept up finish when the upstream does, while the last batches are still being
  written (new page-cache pages cost ~3 ms per MiB on a machine whose memory is all cache, so
  waiting for the disk made every cold blob ~80 ms slower than its upstream; PROFILE section 16).
Bytes first, names second: the blob is committed, then linked to the repository.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor

import aiohttp
from aiohttp import web

from oci.digest import Digest, Hasher

from ..api.errors import BlobUnknown
from .errors import unavailable
from .quota import make_room
from .routing import Target
from .upstream import UpstreamNotFound, UpstreamUnavailable

log = logging.getLogger("registry.proxy")
CHUNK = 256 << 10
WRITE_BATCH = 2 << 20  # bytes handed to the storage driver at once
DISK_QUEUE = 8  # batches read ahead of the disk (16 MiB: rides out another fill's fsync)
MAX_QUEUED = 16  # chunks per client: 4 MiB
LAG_GRACE = 2.0  # seconds the fill waits for a client with a full queue before dropping it to storage
END = object()
OCTET = "application/octet-stream"


class BlobCorrupt(Exception):
    pass


_hashing_thread: ThreadPoolExecutor | None = None


def _hashing() -> ThreadPoolExecutor:
    """One thread for every fill's digests: FIFO, so each fill's batches are hashed in order
    (hashlib drops the GIL while it hashes, so this runs beside the event loop)."""
    global _hashing_thread
    if _hashing_thread is None:
        _hashing_thread = ThreadPoolExecutor(1, thread_name_prefix="proxy-hash")
    return _hashing_thread


class Subscriber:
    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()
        self.lagging = False
        self.room = asyncio.Event()  # set when the client took a chunk (or went away)

    async def get(self):
        item = await self.queue.get()
        self.room.set()
        return item


class BlobFetch:
    def __init__(self, svc, target: Target, digest: Digest) -> None:
        self.svc, self.target, self.digest = svc, target, digest
        self.started: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.streamed = False  # every byte verified and handed to the subscribers that kept up
        self.finished = asyncio.Event()  # committed and linked, or failed
        self.error: BaseException | None = None
        self.subscribers: list[Subscriber] = []
        self.sent = 0  # bytes handed to subscribers so far
        self.task = asyncio.create_task(self._run())

    def subscribe(self) -> Subscriber:
        sub = Subscriber()
        if self.sent or self.streamed:  # joined late: the first bytes are gone; read from storage when done
            sub.lagging = True
        self.subscribers.append(sub)
        return sub

    async def _publish(self, chunk: bytes) -> None:
        """Hand ``chunk`` to every client keeping up. A client whose queue is full is waited
        for, up to ``LAG_GRACE`` (the fill goes at the pace of a client that is merely slow, as a
        plain proxy would; dropping it at once made it wait for the whole commit, fsync
        included, before reading the rest from storage); one that stays behind longer (stalled,
        or much slower than the others) reads the rest from storage once the blob is committed."""
        self.sent += len(chunk)
        for sub in list(self.subscribers):
            if sub.lagging:
                continue
            if sub.queue.qsize() >= MAX_QUEUED:
                deadline = asyncio.get_running_loop().time() + LAG_GRACE
                while sub.queue.qsize() >= MAX_QUEUED and sub in self.subscribers:
                    sub.room.clear()
                    left = deadline - asyncio.get_running_loop().time()
                    if left <= 0:
                        break
                    try:
                        await asyncio.wait_for(sub.room.wait(), left)
                    except asyncio.TimeoutError:
                        break
                if sub.queue.qsize() >= MAX_QUEUED:
                    sub.lagging = True
                    log.info("proxy: a client of %s stayed %d chunks behind at byte %d: it reads the rest "
                             "from storage", self.digest, MAX_QUEUED, self.sent)
                    continue
            sub.queue.put_nowait(chunk)

    def _end_stream(self) -> None:
        """The bytes are verified: clients that kept up may finish now, before the fsync and
        rename of the commit (lagging ones wait for it: they read the rest from storage)."""
        self.streamed = True
        for sub in self.subscribers:
            if not sub.lagging:
                sub.queue.put_nowait(END)

    def _finish(self, error: BaseException | None) -> None:
        self.error = error
        for sub in self.subscribers:
            if error is not None or sub.lagging:
                sub.queue.put_nowait(END if error is None else error)
        self.finished.set()

    async def _run(self) -> None:
        try:
            resp = await self.target.client.blob(self.target.remote, str(self.digest))
        except BaseException as e:  # noqa: BLE001 - handed to every waiter
            self.started.set_exception(e)
            self.finished.set()
            return
        try:  # the namespace's quota, before any byte is stored or sent (registry/proxy/quota.py)
            await make_room(self.svc, self.target.local, str(self.digest), resp.content_length)
        except BaseException as e:  # noqa: BLE001 - handed to every waiter (DENIED)
            resp.release()
            self.error = e
            self.started.set_exception(e)
            self.finished.set()
            return
        storage = self.svc.cache.storage
        upload_id = uuid.uuid4().hex
        held: list[bytes] = []  # the last chunk, released only once the digest is verified
        reading: asyncio.Task | None = None
        try:
            self.started.set_result(resp.content_length)

            # The upstream is read, hashed and handed to the clients by ``_read_upstream`` in its
            # own task; the disk gets the bytes in WRITE_BATCH pieces through a queue of
            # DISK_QUEUE, so a slow write (another fill's fsync, page reclaim) does not stop the
            # stream to the clients, and a 40 MiB layer is a handful of hand-offs to the storage
            # thread rather than forty (each waits to be scheduled: on a loaded machine, most of
            # a cold pull's time). Reading starts before the GC mark and the staging area exist:
            # the clients get their first bytes without waiting for that index write, and no
            # byte reaches storage before the mark is read (the queue holds them meanwhile).
            disk: asyncio.Queue = asyncio.Queue(DISK_QUEUE)
            reading = asyncio.create_task(self._read_upstream(resp, held, disk))
            mark = await self.svc.cache.before_bytes(str(self.digest))  # see registry/lifecycle/reviews.py
            await storage.create_upload(upload_id)

            async def chunks():
                while (item := await disk.get()) is not None:
                    if isinstance(item, BaseException):
                        raise item
                    yield item

            try:
                size = await storage.append_upload(upload_id, chunks())
            except (asyncio.TimeoutError, TimeoutError, aiohttp.ClientError) as e:
                raise UpstreamUnavailable(self.target.upstream.name, f"broke off blob {self.digest} "
                                          f"({e.__class__.__name__})") from None
            finally:
                if not reading.done():  # the disk failed first: stop reading
                    reading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reading
            if size != self.sent:  # the reader verified what it sent; the disk must hold exactly that
                raise BlobCorrupt(f"stored {size} bytes of {self.digest}, {self.sent} were verified")
            await storage.commit_upload(upload_id, self.digest)
            await self.svc.cache.link_blob(self.target.local, self.target.upstream.name, self.target.remote,
                                           str(self.digest), size, mark=mark)
            self._finish(None)
        except BaseException as e:  # noqa: BLE001 - the waiters get it; the staging area goes
            log.warning("proxy: fetching %s of %s failed: %s", self.digest, self.target.local, e)
            if reading is not None and not reading.done():  # the mark or the staging area failed
                reading.cancel()
                with contextlib.suppress(BaseException):
                    await reading
            await storage.delete_upload(upload_id)
            self._finish(e)
            if isinstance(e, asyncio.CancelledError):
                raise
        finally:
            resp.release()

    async def _read_upstream(self, resp, held: list[bytes], disk: asyncio.Queue) -> None:
        """Read and hash the upstream's body: each chunk to the clients keeping up and, in
        WRITE_BATCH pieces, to ``disk``. The last chunk is held back until the whole body is
        verified (digest and length); then it goes out, the clients that kept up are told the
        stream ended, and ``disk`` gets None. A body that ended early or does not match puts its
        exception on ``disk`` instead (the writer raises it, and the fill fails)."""
        batch: list[bytes] = []
        batched = 0
        hasher = Hasher(self.digest.algorithm)
        loop = asyncio.get_running_loop()
        hashed: asyncio.Future | None = None  # the newest batch handed to the hashing thread

        async def flush() -> None:
            nonlocal batch, batched, hashed
            data = b"".join(batch)
            batch, batched = [], 0
            # Hashed in order on one thread (FIFO), beside the event loop and apart from the
            # disk: the loop streams on while the digest keeps pace (see the module docstring).
            # At most one batch of this fill waits for that thread: one still unhashed is
            # waited for first, so a hasher slower than the network (many fills at once) holds
            # the stream back instead of queueing batches without bound.
            if hashed is not None and not hashed.done():
                await hashed
            hashed = loop.run_in_executor(_hashing(), hasher.update, data)
            await disk.put(data)

        try:
            async for chunk in resp.content.iter_chunked(CHUNK):
                if held:
                    await self._publish(held.pop())
                held.append(chunk)
                batch.append(chunk)
                batched += len(chunk)
                if batched >= WRITE_BATCH:
                    await flush()
            if batch:
                await flush()
            if hashed is not None:
                await hashed  # FIFO: every batch before it is hashed too
            received = self.sent + sum(map(len, held))
            if hasher.digest() != self.digest or (resp.content_length is not None and received != resp.content_length):
                raise BlobCorrupt(f"upstream {self.target.upstream.name} sent bytes that do not match {self.digest}")
            if held:
                await self._publish(held.pop())
            self._end_stream()
            await disk.put(None)
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # noqa: BLE001 - handed to the writer, which raises it
            await disk.put(e)


async def serve_blob(svc, target: Target, request: web.Request, digest: Digest, handler) -> web.StreamResponse:
    """GET/HEAD of a blob not yet cached (the caller checked): shared fetch, streamed."""
    if request.method == "HEAD":
        return await _head(request, target, digest)
    fetch = svc.fetches.get(digest_key := (target.local, str(digest)))
    if fetch is None:
        fetch = BlobFetch(svc, target, digest)
        svc.fetches[digest_key] = fetch
        fetch.task.add_done_callback(lambda _t: svc.fetches.pop(digest_key, None))
    # Subscribed before anything is awaited: the fill starts reading the upstream as soon as it
    # has an answer, and a client that subscribed after the first chunk went by would wait for
    # the whole commit (fsync included) before reading from storage.
    sub = None if request.headers.get("Range") or fetch.finished.is_set() else fetch.subscribe()
    try:
        try:
            size = await asyncio.shield(fetch.started)
        except UpstreamNotFound:
            raise BlobUnknown(detail={"digest": str(digest)},
                              message=f"blob {digest} not found at upstream {target.upstream.name}") from None
        except UpstreamUnavailable as e:
            raise unavailable(e) from None
        if sub is None:
            # A range of a blob still arriving (or one that just arrived): the ordinary handler.
            await fetch.finished.wait()
            _raise_fetch_error(fetch)
            return await handler(request)
        return await _stream(svc, request, fetch, sub, size)
    finally:
        if sub is not None:
            if sub in fetch.subscribers:
                fetch.subscribers.remove(sub)
            sub.room.set()  # a fill waiting for this client goes on


async def _stream(svc, request: web.Request, fetch: BlobFetch, sub: Subscriber, size: int | None) -> web.StreamResponse:
    """Send what the fill hands ``sub``; a lagging subscriber reads the rest from storage."""
    headers = {"Docker-Content-Digest": str(fetch.digest), "Content-Type": OCTET}
    resp = web.StreamResponse(status=200, headers=headers)
    if size is not None:
        resp.content_length = size
    await resp.prepare(request)
    offset = 0
    while True:
        item = await sub.get()
        if item is END:
            break
        if isinstance(item, BaseException):
            return _cut(request, resp, item)
        await resp.write(item)
        offset += len(item)
    if sub.lagging:
        async for block in svc.cache.storage.read(fetch.digest, offset):
            await resp.write(block)
    await resp.write_eof()
    return resp


def _raise_fetch_error(fetch: BlobFetch) -> None:
    e = fetch.error
    if isinstance(e, UpstreamUnavailable):
        raise unavailable(e)
    if e is not None:
        raise BlobUnknown(detail={"digest": str(fetch.digest)}, message=f"fetching the blob failed: {e}")


def _cut(request: web.Request, resp: web.StreamResponse, error: BaseException) -> web.StreamResponse:
    """Headers are sent, so no error envelope can follow: close the connection mid-body, which
    every client treats as a failed download (never as a complete blob)."""
    log.info("proxy: cutting the download of %s short: %s", request.path, error)
    if request.transport is not None:
        request.transport.abort()
    return resp


async def _head(request: web.Request, target: Target, digest: Digest) -> web.StreamResponse:
    try:
        resp = await target.client.send("HEAD", target.remote, f"blobs/{digest}")
    except UpstreamNotFound:
        raise BlobUnknown(detail={"digest": str(digest)}) from None
    except UpstreamUnavailable as e:
        raise unavailable(e) from None
    resp.release()
    out = web.StreamResponse(status=200, headers={"Docker-Content-Digest": str(digest), "Content-Type": OCTET})
    if resp.content_length is not None:
        out.content_length = resp.content_length
    await out.prepare(request)
    await out.write_eof()
    return out


async def upstream_has_blob(target: Target, digest: Digest) -> bool:
    """A HEAD at the upstream: does this repository there have the blob? (False when it cannot say.)"""
    try:
        resp = await target.client.send("HEAD", target.remote, f"blobs/{digest}")
    except (UpstreamNotFound, UpstreamUnavailable):
        return False
    resp.release()
    return True

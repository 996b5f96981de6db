"""Blob reads from S3 for the registry's streamed GET path (``redirect: false``).

One GetObject per blob is a single TCP stream that stalls whenever the registry is writing to
its client: while the response drains, nothing reads from S3, and the S3 server's send window
fills. A big blob is therefore fetched as consecutive byte ranges, ``WINDOW`` of them in flight
at once on separate connections (the S3 server reads them in parallel), each read straight
into one preallocated buffer of ``PIECE`` bytes by a worker thread (see RangeFetcher for why).
The pieces are handed to the caller in order and written in large slices: no per-64-KiB-chunk
bytes objects, joins or event-loop wake-ups.

Memory: at most ``WINDOW`` pieces being fetched per read plus the one being written, and
process-wide at most ``BUDGET`` pieces being fetched (a read waits for room rather than
allocating more), so many concurrent pulls cannot grow the registry without bound. Pieces are
taken in order, so a read that holds any room always holds the room of its earliest unfinished
piece: no read can wait on another forever.
"""
from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, AsyncIterator
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

from .driver import StorageUnavailable

if TYPE_CHECKING:
    from .s3 import S3Driver

# Bytes per ranged GET, and the smallest read that is cut into them. Measured (PROFILE.md
# section 8): 256 MiB pulls 0.56 -> 0.85 of distribution's; a 16 MiB blob cut into 4 MiB pieces
# did worse than one streamed GetObject (0.62 vs 0.76: more requests, more CPU in the S3
# server), so blobs up to one piece stay a single stream.
PIECE = 16 << 20
WINDOW = 2               # ranged GETs in flight per read
BUDGET = 12              # pieces being fetched in the whole process (12 x 16 MiB = 192 MiB)


class PieceBudget:
    """Process-wide room for pieces in flight, and their buffers for reuse: a fresh 16 MiB
    bytearray is an mmap, 4,096 page faults and a memset under the GIL (27 % of the pull path's
    Python time in the profile); a buffer is handed back only once the caller is done with it."""

    def __init__(self, pieces: int = BUDGET) -> None:
        self.room = asyncio.Semaphore(pieces)
        self.free: list[bytearray] = []
        self.keep = pieces + 4

    def buffer(self) -> bytearray:
        return self.free.pop() if self.free else bytearray(PIECE)

    def give_back(self, buf: bytearray) -> None:
        if len(buf) == PIECE and len(self.free) < self.keep:
            self.free.append(buf)


def needs_proxy(endpoint: str) -> bool:
    """Whether the environment routes requests to ``endpoint`` (empty: AWS) through a proxy."""
    proxies = getproxies()
    if not proxies:
        return False
    host = urlsplit(endpoint).hostname if endpoint else "s3.amazonaws.com"
    return not proxy_bypass(host or "")


class RangeFetcher:
    """Ranged GETs of presigned URLs on blocking keep-alive connections in worker threads.

    Why not aiobotocore here: through the event loop every 64 KiB network chunk costs a wake-up,
    a parse and a Python bytes object; ``http.client``'s ``readinto`` fills the piece's buffer
    with large ``recv_into`` calls that release the GIL, and the loop only sees the finished
    piece. The URL is presigned by botocore (same credentials, signature v4); Range is an
    unsigned header, which S3 allows. Retries: connection errors and 5xx/503 SlowDown, with
    backoff, like botocore's standard mode; 404 is Missing."""

    def __init__(self, threads: int = BUDGET, attempts: int = 3) -> None:
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="s3-read")
        self.local = threading.local()
        self.attempts = attempts
        self.ssl = None

    def _connection(self, scheme: str, netloc: str, timeout: float) -> http.client.HTTPConnection:
        conns = self.local.__dict__.setdefault("conns", {})
        conn = conns.get((scheme, netloc))
        if conn is None:
            if scheme == "https":
                if self.ssl is None:
                    self.ssl = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or None)
                conn = http.client.HTTPSConnection(netloc, timeout=timeout, context=self.ssl)
            else:
                conn = http.client.HTTPConnection(netloc, timeout=timeout)
            conns[(scheme, netloc)] = conn
        return conn

    def get_into(self, url: str, buf: bytearray, start: int, length: int, timeout: float) -> memoryview:
        from .s3 import Missing

        parts = urlsplit(url)
        target = parts.path + ("?" + parts.query if parts.query else "")
        headers = {"Range": f"bytes={start}-{start + length - 1}", "Accept-Encoding": "identity"}
        for attempt in range(self.attempts):
            conn = self._connection(parts.scheme, parts.netloc, timeout)
            try:
                conn.request("GET", target, headers=headers)
                resp = conn.getresponse()
                if resp.status == 404:
                    resp.read()
                    raise Missing("NoSuchKey")
                if resp.status not in (200, 206):
                    resp.read()
                    if resp.status >= 500 and attempt + 1 < self.attempts:
                        time.sleep(0.05 * 2 ** attempt)
                        continue
                    raise StorageUnavailable(f"S3 GetObject failed: {resp.status}")
                view = memoryview(buf)[:length]
                pos = 0
                while pos < length and (n := resp.readinto(view[pos:])):
                    pos += n
                if pos != length or not resp.isclosed() and resp.read(1):
                    conn.close()
                    raise StorageUnavailable(f"S3 GetObject: {pos} of {length} bytes")
                return view
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                if attempt + 1 == self.attempts:
                    raise StorageUnavailable(f"S3 GetObject failed: {e.__class__.__name__}") from None
                time.sleep(0.05 * 2 ** attempt)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


async def fetch_into(s3: "S3Driver", buf: bytearray, key: str, start: int, length: int) -> memoryview:
    url = await s3.client.generate_presigned_url("get_object", Params={"Bucket": s3.bucket, "Key": key},
                                                 ExpiresIn=300)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(s3.fetcher.pool, s3.fetcher.get_into, url, buf, start, length,
                                      s3.settings.timeout)


async def read_ranges(s3: "S3Driver", key: str, offset: int, length: int) -> AsyncIterator[memoryview]:
    """Bytes [offset, offset+length) of ``key`` as whole pieces, in order (see the module
    docstring). A piece's buffer is reused once the next piece is asked for: write or copy it
    before that. The buffer of a fetch that was cancelled is never reused (its worker thread
    may still be filling it)."""
    budget: PieceBudget = s3.piece_budget
    starts = iter(range(offset, offset + length, PIECE))
    in_flight: list[tuple[asyncio.Task, bytearray]] = []

    async def start_next() -> bool:
        start = next(starts, None)
        if start is None:
            return False
        await budget.room.acquire()
        buf = budget.buffer()
        task = asyncio.create_task(fetch_into(s3, buf, key, start, min(PIECE, offset + length - start)))
        in_flight.append((task, buf))
        return True

    try:
        while len(in_flight) < WINDOW and await start_next():
            pass
        while in_flight:
            task, buf = in_flight[0]
            try:
                piece = await task
            finally:
                in_flight.pop(0)
                budget.room.release()   # one piece's room: its buffer is now the caller's alone
            await start_next()
            yield piece
            del piece
            budget.give_back(buf)       # the caller asked for more: it is done with this one
    finally:
        for task, _ in in_flight:
            task.cancel()
        for task, _ in in_flight:
            with contextlib.suppress(BaseException):
                await task
            budget.room.release()

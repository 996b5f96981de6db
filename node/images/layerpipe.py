"""A layer's bytes handed from the download (event loop) to the thread that unpacks them.

A pull unpacks each layer while it downloads (node/images/pull.py): the event loop feeds every
chunk it receives to a ``ChunkPipe``, and the unpacking thread reads the pipe as the file the
decompressor and tar reader pull from. Nothing is read twice (not the ingest file, not the
socket), and the chunks are the ones the download writes and hashes anyway.

- Bounded: ``feed`` waits while more than ``limit`` bytes are queued, so a slow unpack slows
  the download instead of holding the layer in memory.
- Either side may stop: ``abort`` (the download starts over, resumes or fails) makes the reader
  raise ``PipeAborted``; ``leave`` (the reader gave up: an invalid layer, the snapshot's lock
  held by another process) makes every later ``feed`` drop its chunk at once, so a download
  never waits on a reader that is gone.
"""
from __future__ import annotations

import asyncio
import threading
from collections import deque

DEFAULT_LIMIT = 8 << 20  # queued bytes per layer before feed waits (6 layers at once: <= 48 MiB)


class PipeAborted(Exception):
    """The download behind the pipe did not deliver the blob from its first byte to its last."""


class ChunkPipe:
    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int = DEFAULT_LIMIT) -> None:
        self._loop, self._limit = loop, limit
        self._cond = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._queued = 0
        self._eof = self._aborted = self._gone = False
        self._room = asyncio.Event()  # set by the reader (through the loop) when it drained enough
        self._feeder_waits = False
        self._buf = memoryview(b"")  # the chunk being read
        self._pos = 0                # offset in _buf
        self._base = 0               # stream offset of _buf[0]

    # -- the download's side (event loop thread) -------------------------------------------

    async def feed(self, chunk: bytes) -> None:
        with self._cond:
            if self._gone or self._aborted or self._eof:
                return
            self._chunks.append(chunk)
            self._queued += len(chunk)
            self._cond.notify()
            if self._queued <= self._limit:
                return
            self._room.clear()
            self._feeder_waits = True
        await self._room.wait()

    def close(self) -> None:
        """Every byte of the blob was fed: the reader sees the end of the stream."""
        with self._cond:
            self._eof = True
            self._cond.notify()

    def abort(self) -> None:
        with self._cond:
            if self._eof:
                return
            self._aborted = True
            self._chunks.clear()
            self._queued = 0
            self._cond.notify()
            self._wake_feeder()

    @property
    def aborted(self) -> bool:
        return self._aborted

    # -- the reader's side (unpacking thread) ----------------------------------------------

    def leave(self) -> None:
        """The reader reads no more: drop what is queued and every later chunk."""
        with self._cond:
            self._gone = True
            self._chunks.clear()
            self._queued = 0
            self._wake_feeder()

    def _wake_feeder(self) -> None:  # with _cond held
        if self._feeder_waits:
            self._feeder_waits = False
            self._loop.call_soon_threadsafe(self._room.set)

    def _next(self) -> bool:
        """Make the next chunk current; False at the end of the stream."""
        with self._cond:
            while not self._chunks and not self._eof and not self._aborted:
                self._cond.wait()
            if self._aborted:
                raise PipeAborted("the layer's download was interrupted")
            if not self._chunks:
                return False
            chunk = self._chunks.popleft()
            self._queued -= len(chunk)
            if self._queued <= self._limit // 2:
                self._wake_feeder()
        self._base += len(self._buf)
        self._buf, self._pos = memoryview(chunk), 0
        return True

    def readinto(self, b) -> int:
        """What ISA-L's gzip reader calls: up to len(b) bytes, 0 only at the end."""
        if self._pos >= len(self._buf) and not self._next():
            return 0
        n = min(len(b), len(self._buf) - self._pos)
        b[:n] = self._buf[self._pos:self._pos + n]
        self._pos += n
        return n

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (a plain tar's and zstandard's reads); fewer only at the end."""
        if n is None or n < 0:
            n = 1 << 62
        pieces = []
        while n > 0:
            if self._pos >= len(self._buf) and not self._next():
                break
            piece = self._buf[self._pos:self._pos + n]
            self._pos += len(piece)
            n -= len(piece)
            pieces.append(piece)
        return pieces[0].tobytes() if len(pieces) == 1 else b"".join(pieces)

    def peek_head(self, n: int) -> bytes:
        """The stream's first ``n`` bytes (fewer if it is shorter), left unread: what the
        decompressor is chosen by (node/images/unpack.py). Only before the first read."""
        if self.tell():
            raise ValueError("peek_head after a read")
        while len(self._buf) < n:
            first = self._buf.tobytes()
            if not self._next():
                self._buf, self._base = memoryview(first), 0
                break
            self._buf, self._base = memoryview(first + self._buf.tobytes()), 0
        return self._buf[:n].tobytes()

    def tell(self) -> int:
        return self._base + self._pos

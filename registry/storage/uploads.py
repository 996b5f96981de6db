"""Upload sessions over a storage driver: append while hashing, verify, commit.

Python's hashlib state cannot be saved to disk, so a live session keeps its running Hasher in
this process's memory. The hasher is trusted only while the bytes it saw equal the staged size;
after a restart, after another process appended (a second replica), or after a write that broke
half-way, it is dropped and the staged bytes are re-hashed when the upload is finished. Hashing
runs in worker threads (the driver calls the hook off the event loop), and nothing here ever
holds more than one buffer of a layer in memory.

A driver that keeps a resumable hash with the session itself (``resumable_hash``: the S3
driver, see registry/storage/s3_uploads.py) needs none of this: its ``upload_digest`` is right
on every replica, so no in-process hasher is kept for it and nothing is re-hashed.
"""
from __future__ import annotations

import asyncio
import uuid
from typing import AsyncIterator, Callable

from oci.digest import Digest, Hasher

from .driver import DigestMismatch, StorageDriver, UploadNotFound

STREAM_ALGORITHM = "sha256"  # what almost every client sends; sha512 uploads are re-hashed


class UploadSessions:
    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver
        self._hashers: dict[str, Hasher] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._resumable = bool(getattr(driver, "resumable_hash", False))
        # Monolithic uploads up to this size are read into memory and written with one put
        # (remote stores, where a session costs several requests); 0 = always a session.
        self.single_put_limit = int(getattr(driver, "single_put_limit", 0))
        self._local = all(callable(getattr(driver, n, None))
                          for n in ("create_upload_now", "upload_size_now", "delete_upload_now"))
        self._has_put_now = callable(getattr(driver, "put_now", None))

    # -- a local driver's staging steps, to run inside another thread call (the index's) -----
    @property
    def local(self) -> bool:
        """The driver's staging area can be created, sized and removed by plain calls from any
        thread (the filesystem driver: ``create_upload_now``, ``upload_size_now``,
        ``delete_upload_now``), so the API runs them inside the index's own thread calls."""
        return self._local

    def reserve(self) -> str:
        """A new session id, with no staging area yet: the caller makes it with ``create_now``
        when the first bytes come (and calls ``forget`` once it is finished or refused)."""
        # No hasher yet: ``append`` starts one for an empty session, and a POST + PUT of a
        # small body (the common push of configs and small layers) never needs one.
        return uuid.uuid4().hex

    def create_now(self, upload_id: str) -> None:
        self.driver.create_upload_now(upload_id)  # type: ignore[attr-defined]

    def size_now(self, upload_id: str) -> int | None:
        return self.driver.upload_size_now(upload_id)  # type: ignore[attr-defined]

    def discard_now(self, upload_id: str) -> None:
        """Remove the staging area (any thread); the caller then calls ``forget`` on the loop."""
        self.driver.delete_upload_now(upload_id)  # type: ignore[attr-defined]

    def forget(self, upload_id: str) -> None:
        self._forget(upload_id)

    def put_whole_now(self, digest: Digest, data: bytes) -> Callable[[], None] | None:
        """The verified write of a small whole blob as a blocking call for another thread call to
        make (the index's write that names it: ``before=``), or None when the driver has none
        (then ``put_whole``)."""
        if not self._has_put_now:
            return None
        driver = self.driver
        return lambda: driver.put_now(digest, data)  # type: ignore[attr-defined]

    def lock(self, upload_id: str) -> asyncio.Lock:
        """Serialises the requests of one session inside this process."""
        lock = self._locks.get(upload_id)
        if lock is None:
            lock = self._locks[upload_id] = asyncio.Lock()
        return lock

    def _forget(self, upload_id: str) -> None:
        self._hashers.pop(upload_id, None)
        self._locks.pop(upload_id, None)

    async def start(self) -> str:
        upload_id = uuid.uuid4().hex
        await self.driver.create_upload(upload_id)
        if not self._resumable:
            self._hashers[upload_id] = Hasher(STREAM_ALGORITHM)
        return upload_id

    async def create(self, upload_id: str) -> None:
        """Make the staging area of a session ``reserve`` named (on the event loop)."""
        await self.driver.create_upload(upload_id)

    async def put_whole(self, digest: Digest, data: bytes) -> int:
        """A small monolithic upload already in memory: one verified write, no session."""
        await self.driver.put(digest, data)
        return len(data)

    async def size(self, upload_id: str) -> int | None:
        return await self.driver.upload_size(upload_id)

    async def append(self, upload_id: str, chunks: AsyncIterator[bytes], start_size: int | None = None) -> int:
        """Append a stream to the session; returns the new size. Caller holds ``lock``."""
        if start_size is None:
            start_size = await self.driver.upload_size(upload_id)
            if start_size is None:
                raise UploadNotFound(upload_id)
        if self._resumable:
            return await self.driver.append_upload(upload_id, chunks)
        hasher = self._hashers.get(upload_id)
        if hasher is not None and hasher.size != start_size:
            hasher = None
        if hasher is None and start_size == 0:
            hasher = Hasher(STREAM_ALGORITHM)
        if hasher is None:
            self._hashers.pop(upload_id, None)
        else:
            self._hashers[upload_id] = hasher
        try:
            new_size = await self.driver.append_upload(upload_id, chunks, hasher.update if hasher else None)
        except BaseException:
            self._check_hasher(upload_id, await self.driver.upload_size(upload_id))
            raise
        self._check_hasher(upload_id, new_size)
        return new_size

    def _check_hasher(self, upload_id: str, size: int | None) -> None:
        hasher = self._hashers.get(upload_id)
        if hasher is not None and hasher.size != size:
            del self._hashers[upload_id]

    async def _rehash(self, upload_id: str, algorithm: str) -> Hasher:
        hasher = Hasher(algorithm)
        loop = asyncio.get_running_loop()
        async for block in self.driver.read_upload(upload_id):
            await loop.run_in_executor(None, hasher.update, block)
        return hasher

    async def digest(self, upload_id: str, algorithm: str = STREAM_ALGORITHM) -> tuple[Digest, int]:
        """Digest and size of the staged bytes, from the live hasher when it is still valid."""
        if self._resumable:
            known = await self.driver.upload_digest(upload_id, algorithm)  # type: ignore[attr-defined]
            if known is not None:
                return known
        size = await self.driver.upload_size(upload_id)
        if size is None:
            raise UploadNotFound(upload_id)
        hasher = self._hashers.get(upload_id)
        if hasher is None or hasher.size != size or hasher.algorithm != algorithm:
            hasher = await self._rehash(upload_id, algorithm)
            if algorithm == STREAM_ALGORITHM:
                self._hashers[upload_id] = hasher
        return hasher.digest(), hasher.size

    async def finish(self, upload_id: str, expected: Digest) -> int:
        """Verify the staged bytes against ``expected`` and make them that blob. Returns size.

        On a mismatch the staged bytes stay, so the session can still be inspected or cancelled.
        """
        actual, size = await self.digest(upload_id, expected.algorithm)
        if actual != expected:
            raise DigestMismatch(expected, actual)
        await self.driver.commit_upload(upload_id, expected)
        self._forget(upload_id)
        return size

    async def cancel(self, upload_id: str, empty: bool = False) -> None:
        """Remove the session's staged bytes; ``empty``: the caller just saw it hold none, which
        lets a remote driver skip reading its state first (``discard_empty_upload``)."""
        discard = getattr(self.driver, "discard_empty_upload", None) if empty else None
        await (discard(upload_id) if discard is not None else self.driver.delete_upload(upload_id))
        self._forget(upload_id)

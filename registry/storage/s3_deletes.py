"""Deletes of finished upload sessions' keys, batched off the request path.

A small push (POST, then PUT with the body) costs the S3 driver a state write, a state read, the
blob's PUT and a delete of the session's state; the delete only tidies up after the blob is
stored and named, so the client need not wait for it. ``DeleteBatcher.add`` queues keys and a
background task sends them in DeleteObjects calls (up to 1000 keys each) ``DELAY`` seconds
later, so concurrent pushes share one call: one S3 request per batch instead of one per push.

A crash before the batch is sent leaves the queued state objects behind, as a crash just
before an immediate delete would: they are listed by ``iter_uploads`` and removed by the upload
expiry. ``flush`` (called by the driver's ``close``) sends whatever is queued.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from .driver import StorageError

if TYPE_CHECKING:
    from .s3 import S3Driver

DELAY = 0.2          # seconds a key waits for company before its batch is sent
log = logging.getLogger(__name__)


class DeleteBatcher:
    def __init__(self, s3: "S3Driver") -> None:
        self.s3 = s3
        self.queued: list[str] = []
        self.task: asyncio.Task | None = None

    def add(self, keys: list[str]) -> None:
        self.queued.extend(keys)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._send_later())

    async def _send_later(self) -> None:
        await asyncio.sleep(DELAY)
        await self._send()

    async def _send(self) -> None:
        keys, self.queued = self.queued, []
        if not keys:
            return
        try:
            await self.s3.delete_keys(keys)
        except StorageError as e:
            # Left for the upload expiry (they are still listed under uploads/).
            log.warning("deleting %d finished upload keys failed (the upload expiry removes them): %s", len(keys), e)

    async def flush(self) -> None:
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._send()

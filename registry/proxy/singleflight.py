"""Concurrent callers asking for the same thing share one call (per process).

The shared call runs in its own task, shielded from the callers: a client that disconnects does
not cancel a fetch other clients (and the cache) are waiting for.
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Hashable, TypeVar

T = TypeVar("T")


class SingleFlight:
    def __init__(self) -> None:
        self._calls: dict[Hashable, asyncio.Future[Any]] = {}

    async def run(self, key: Hashable, fn: Callable[[], Awaitable[T]]) -> T:
        fut = self._calls.get(key)
        if fut is None:
            fut = asyncio.ensure_future(fn())
            self._calls[key] = fut

            def done(f: asyncio.Future[Any], key: Hashable = key) -> None:
                self._calls.pop(key, None)
                if not f.cancelled():
                    f.exception()  # retrieved here, so an error nobody awaited any more is not logged

            fut.add_done_callback(done)
        return await asyncio.shield(fut)

    def __len__(self) -> int:
        return len(self._calls)

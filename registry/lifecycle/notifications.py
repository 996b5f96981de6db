"""Notifications: distribution's event envelope, queued durably in the index, delivered in order.

- Push and delete events are inserted by the index transaction that made the change (hooks.py),
  so a crash or restart loses none; manifest pulls (GET) are buffered in memory and written in
  one transaction every ``PULL_FLUSH`` seconds (a kill -9 may lose the last fraction of a
  second of pulls; a clean stop writes them).
- One deliverer per endpoint sends the oldest events first, up to ``BATCH`` per POST
  (``application/vnd.docker.distribution.events.v1+json``), and deletes them once the endpoint
  answered 2xx. On failure it waits (0.5 s doubling, at most ``MAX_BACKOFF`` = 30 s) and sends
  the same events again: order holds per endpoint, hence per repository. A push only inserts a
  row, so a dead or hanging endpoint never slows it.
- On PostgreSQL each endpoint's deliverer holds an advisory lock on its own connection: one
  replica at a time delivers an endpoint (if it dies, the lock goes with its connection).
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import time
import uuid
from typing import Any

import aiohttp
from sqlalchemy import Connection, delete, insert, select, text, update

from registry.index.lifecycle_models import NotificationEvent

from .settings import Endpoint, NotificationSettings

log = logging.getLogger("registry.notifications")
MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
BATCH = 50
MAX_BACKOFF = 30.0
PULL_FLUSH = 0.25
IDLE_POLL = 0.5


class EventSink:
    """What the index's hooks and the API call: turns changes into queued events."""

    def __init__(self, settings: NotificationSettings, source_addr: str, base_url: str) -> None:
        self.endpoints = settings.endpoints
        self.source = {"addr": source_addr, "instanceID": uuid.uuid4().hex}
        self.base_url = base_url.rstrip("/")
        self.pending_pulls: list[dict[str, Any]] = []
        self.wakeup = asyncio.Event()

    def _event(self, action: str, repository: str, target: dict[str, Any], ctx: dict[str, Any] | None) -> dict[str, Any]:
        target = dict(target, repository=repository)
        if target.get("digest"):
            target["url"] = f"{self.base_url}/v2/{repository}/manifests/{target['digest']}"
        ctx = ctx or {}
        return {
            "id": uuid.uuid4().hex,
            "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "action": action,
            "target": target,
            "request": ctx.get("request", {}),
            "actor": ctx.get("actor", {}),
            "source": self.source,
        }

    def _rows(self, action: str, repository: str, target: dict[str, Any], ctx: dict[str, Any] | None):
        wanted = [e for e in self.endpoints if e.wants(action, repository)]
        if not wanted:
            return []
        event = self._event(action, repository, target, ctx)
        now = time.time()
        return [{"endpoint": e.name, "repository": repository, "payload": event, "attempts": 0,
                 "next_attempt_at": 0.0, "created_at": now} for e in wanted]

    def enqueue(self, conn: Connection, action: str, repository: str, target: dict[str, Any],
                ctx: dict[str, Any] | None) -> None:
        rows = self._rows(action, repository, target, ctx)
        if rows:
            conn.execute(insert(NotificationEvent), rows)
            self._wake()

    def pulled(self, repository: str, target: dict[str, Any], ctx: dict[str, Any] | None) -> None:
        self.pending_pulls.extend(self._rows("pull", repository, target, ctx))

    def _wake(self) -> None:
        try:
            asyncio.get_running_loop().call_soon_threadsafe(self.wakeup.set)
        except RuntimeError:  # called from the index's writer thread: no loop there
            loop = getattr(self, "loop", None)
            if loop is not None:
                loop.call_soon_threadsafe(self.wakeup.set)

    async def flush_pulls(self, index) -> None:
        rows, self.pending_pulls = self.pending_pulls, []
        if rows:
            await index.db.write(lambda conn: conn.execute(insert(NotificationEvent), rows))
            self.wakeup.set()


def _lock_key(endpoint: str) -> int:
    return int.from_bytes(hashlib.sha256(f"dockyard-events:{endpoint}".encode()).digest()[:7], "big")


class Deliverer:
    def __init__(self, index, endpoint: Endpoint, sink: EventSink) -> None:
        self.index, self.endpoint, self.sink = index, endpoint, sink
        self.delivered = 0

    async def _batch(self) -> list[tuple[int, dict[str, Any], int]]:
        q = (select(NotificationEvent.id, NotificationEvent.payload, NotificationEvent.attempts)
             .where(NotificationEvent.endpoint == self.endpoint.name)
             .order_by(NotificationEvent.id).limit(BATCH))
        return [(i, p, a) for i, p, a in await self.index.db.read(lambda conn: conn.execute(q).all())]

    async def _post(self, session: aiohttp.ClientSession, events: list[dict[str, Any]]) -> None:
        headers = {"Content-Type": MEDIA_TYPE}
        for key, values in self.endpoint.headers.items():
            headers[key] = ", ".join(values)
        timeout = aiohttp.ClientTimeout(total=self.endpoint.timeout)
        async with session.post(self.endpoint.url, json={"events": events}, headers=headers, timeout=timeout) as r:
            if not 200 <= r.status < 300:
                raise RuntimeError(f"endpoint answered {r.status}")

    async def run(self) -> None:
        lock_conn = None
        try:
            if self.index.db.dialect == "postgresql":
                lock_conn = await self._hold_lock()
            async with aiohttp.ClientSession() as session:
                await self._deliver(session)
        finally:
            if lock_conn is not None:
                await lock_conn.close()

    async def _hold_lock(self):
        while True:
            conn = await self.index.engine.connect()
            got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _lock_key(self.endpoint.name)})).scalar()
            await conn.commit()
            if got:
                return conn
            await conn.close()
            await asyncio.sleep(5)  # another replica delivers this endpoint

    async def _deliver(self, session: aiohttp.ClientSession) -> None:
        failures = 0
        while True:
            try:
                batch = await self._batch()
            except Exception as e:  # the index is away: try again shortly
                log.warning("notifications: %s: reading the queue failed (%s)", self.endpoint.name, e.__class__.__name__)
                await asyncio.sleep(2)
                continue
            if not batch:
                self.sink.wakeup.clear()
                try:
                    await asyncio.wait_for(self.sink.wakeup.wait(), IDLE_POLL)
                except asyncio.TimeoutError:
                    pass
                continue
            ids = [i for i, _, _ in batch]
            try:
                await self._post(session, [p for _, p, _ in batch])
            except asyncio.CancelledError:
                raise
            except Exception as e:
                failures += 1
                backoff = min(MAX_BACKOFF, 0.5 * 2 ** (failures - 1))
                log.warning("notifications: %s: %d event(s) not delivered (%s); retrying in %.1f s",
                            self.endpoint.name, len(ids), e, backoff)
                with contextlib.suppress(Exception):
                    await self.index.db.write(lambda conn: conn.execute(
                        update(NotificationEvent).where(NotificationEvent.id.in_(ids)).values(
                            attempts=NotificationEvent.attempts + 1, next_attempt_at=time.time() + backoff)))
                await asyncio.sleep(backoff)
                continue
            failures = 0
            try:
                await self.index.db.write(lambda conn: conn.execute(
                    delete(NotificationEvent).where(NotificationEvent.id.in_(ids))))
            except Exception as e:  # delivered but not forgotten: they go again (at least once)
                log.warning("notifications: %s: marking events delivered failed (%s)", self.endpoint.name,
                            e.__class__.__name__)
                await asyncio.sleep(2)
                continue
            self.delivered += len(ids)


async def flush_loop(sink: EventSink, index) -> None:
    try:
        while True:
            await asyncio.sleep(PULL_FLUSH)
            try:
                await sink.flush_pulls(index)
            except Exception as e:
                log.warning("notifications: writing pull events failed (%s: %s)", e.__class__.__name__, e)
    finally:
        await sink.flush_pulls(index)

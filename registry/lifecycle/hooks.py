"""What the index's own transactions call so that lifecycle rules hold: the only seam between
registry/index (names) and registry/lifecycle (GC queue, safety checks, events).

``Index.lifecycle`` is a ``Lifecycle``; an index method calls ``life = self.lifecycle.bind()`` on
the event loop (capturing who is asking, for events) and then ``life.<hook>(conn, ...)`` inside
its transaction. Every hook runs in that transaction: a review row or an event is committed
with the change that caused it, or not at all.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from sqlalchemy import Connection, bindparam, select

from registry.index import fast
from registry.index.models import ManifestReference, Tag

from . import reviews
from .settings import GcSettings

if TYPE_CHECKING:
    from .notifications import EventSink


# What the tags a push moves pointed at before (built once: see registry/index/fast.py).
_OLD_TARGETS = select(Tag.manifest_digest).where(
    Tag.repository_id == bindparam("repo_id"), Tag.name.in_(bindparam("names", expanding=True)),
    Tag.manifest_digest != bindparam("digest"))

# An upload's bytes are reviewed no sooner than this after it started writing them.
IN_FLIGHT_GRACE = 600.0


class ReferencesGone(LookupError):
    """A manifest names blobs or manifests that are gone or being garbage-collected."""

    def __init__(self, missing: set[str]) -> None:
        super().__init__(f"{len(missing)} reference(s) gone: {sorted(missing)[0]}")
        self.missing = missing


class BytesSwept(RuntimeError):
    """Bytes written for this request may have been deleted by a concurrent sweep: write again."""

    def __init__(self, digest: str) -> None:
        super().__init__(f"{digest} was garbage-collected while it was being stored")
        self.digest = digest


@dataclass
class Lifecycle:
    gc: GcSettings = field(default_factory=GcSettings)
    events: "EventSink | None" = None

    def bind(self) -> "BoundLifecycle":
        if self.events is None:  # the request is only wanted for events: not built per write
            return BoundLifecycle(self, None)
        from registry.ops.context import current_request

        return BoundLifecycle(self, current_request())


@dataclass
class BoundLifecycle:
    owner: Lifecycle
    request: dict[str, Any] | None

    @property
    def gc(self) -> GcSettings:
        return self.owner.gc

    def _event(self, conn: Connection, action: str, repository: str, target: dict[str, Any]) -> None:
        if self.owner.events is not None:
            self.owner.events.enqueue(conn, action, repository, target, self.request)

    # -- blobs --------------------------------------------------------------------------------
    def before_bytes(self, conn: Connection, digest: str) -> int:
        # Bytes being written are not garbage yet, whatever the grace: if they are never named
        # (a crash, a client gone), this review collects them later.
        after = time.time() + max(self.gc.review_delay, IN_FLIGHT_GRACE)
        reviews.enqueue_blobs(conn, [digest], after, "upload_started")
        return reviews.sweep_mark(conn)

    def blob_linking(self, conn: Connection, digest: str, mark: int | None) -> None:
        """An upload's bytes are about to be named: queue their review (an unused upload is
        garbage after review_delay) and refuse when a sweep may have deleted them."""
        reviews.enqueue_blobs(conn, [digest], time.time() + self.gc.review_delay, "upload", postpone_only=False)
        if mark is not None and reviews.bytes_maybe_swept(conn, digest, mark):
            raise BytesSwept(digest)

    def blob_mounting(self, conn: Connection, digest: str) -> bool:
        """A mount names bytes it did not write: they must exist and not be condemned."""
        reviews.take_write_lock(conn)
        return not reviews.unusable_blobs(conn, [digest])

    # -- manifests ----------------------------------------------------------------------------
    def manifest_putting(self, conn: Connection, repo_id: int, repository: str, digest: str, media_type: str,
                         size: int, blobs: tuple[str, ...], children: tuple[str, ...], tags: tuple[str, ...],
                         mark: int | None) -> None:
        """Before the manifest row is written: every reference must still be usable (locked, so a
        sweep cannot start on them until we commit); moved tags queue their old manifests."""
        reviews.take_write_lock(conn)
        gone = reviews.unusable_blobs(conn, blobs) | reviews.unusable_manifests(conn, repo_id, children)
        if gone:
            raise ReferencesGone(gone)
        reviews.lock_manifest(conn, repo_id, digest)
        if mark is not None:
            if reviews.bytes_maybe_swept(conn, digest, mark):
                raise BytesSwept(digest)
            # Named by this transaction now: its in-flight grace ends (the review finds it named).
            reviews.enqueue_blobs(conn, [digest], time.time() + self.gc.review_delay, "manifest_put",
                                  postpone_only=False)
        now = time.time()
        if self.gc.untagged_after > 0:
            after = now + self.gc.untagged_after
            if tags:
                old = fast.execute(conn, _OLD_TARGETS, {"repo_id": repo_id, "names": sorted(set(tags)),
                                                        "digest": digest}).scalars()
                reviews.enqueue_manifests(conn, repo_id, set(old), after, "tag_moved")
            else:
                reviews.enqueue_manifests(conn, repo_id, [digest], after, "untagged_push")
        for tag in tags or (None,):
            self._event(conn, "push", repository, _target(digest, media_type, size, tag))

    def manifest_deleting(self, conn: Connection, repo_id: int, repository: str, manifest_id: int, digest: str,
                          media_type: str = "", size: int = 0, force: bool = False) -> None:
        """Before a manifest row goes: what it named (and its own bytes) are queued for review."""
        refs = conn.execute(select(ManifestReference.digest, ManifestReference.kind)
                            .where(ManifestReference.manifest_id == manifest_id)).all()
        now = time.time()
        reviews.enqueue_blobs(conn, [d for d, kind in refs if kind == "blob"] + [digest],
                              now + self.gc.review_delay, "manifest_delete")
        children = [d for d, kind in refs if kind == "manifest"]
        # An index's children become untagged orphans; retention's force carries down to them.
        if children and (force or self.gc.untagged_after > 0):
            reviews.enqueue_manifests(conn, repo_id, children, now + (0 if force else self.gc.untagged_after),
                                      "parent_deleted", force=force)
        self._event(conn, "delete", repository, _target(digest, media_type, size, None))

    def tag_deleting(self, conn: Connection, repo_id: int, repository: str, tag: str, digest: str) -> None:
        if self.gc.untagged_after > 0:
            reviews.enqueue_manifests(conn, repo_id, [digest], time.time() + self.gc.untagged_after, "tag_delete")
        self._event(conn, "delete", repository, {"repository": repository, "tag": tag, "digest": digest})


def _target(digest: str, media_type: str, size: int, tag: str | None) -> dict[str, Any]:
    target: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size, "length": size}
    if tag:
        target["tag"] = tag
    return target


async def store_and_name(index, storage, digest, data: bytes, name: Callable[[int], Awaitable[Any]],
                         attempts: int = 5, mark: int | None = None) -> Any:
    """Write small bytes (a manifest) and name them; when a sweep may have taken them in
    between (BytesSwept), wait for it to finish and write them again. ``mark``: the caller
    already ran ``before_bytes(digest)`` (in a transaction of its own) for the first attempt."""
    from registry.storage.driver import BlobNotFound

    for attempt in range(attempts):
        if mark is None or attempt:
            mark = await index.before_bytes(str(digest))
        if getattr(storage, "put_refreshes_existing", False):
            await storage.put(digest, data)  # writes, or refreshes the mtime of, the bytes
        else:
            try:
                await storage.touch(digest)  # already stored: keep the full gc's grace period on it
            except BlobNotFound:
                await storage.put(digest, data)
        try:
            return await name(mark)
        except BytesSwept:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))
        except ReferencesGone:
            await blob_refused(index, str(digest))  # written but not named: reviewed as usual
            raise


async def blob_refused(index, digest: str) -> None:
    """An upload whose naming was refused may have left bytes behind: queue them for review."""
    await index.db.write(lambda conn: reviews.enqueue_blobs(
        conn, [digest], time.time() + index.lifecycle.gc.review_delay, "upload_refused", postpone_only=False))

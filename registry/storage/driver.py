"""The storage driver interface: what the registry needs from a place that keeps bytes.

Small on purpose: blobs are immutable files named by digest, uploads are append-only staging
areas that become a blob in one ``commit``. Every driver must pass the contract suite in
tests/registry/storage/test_contract.py.

Names (which repository may see which blob) are not the driver's business: that is the index.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Protocol

from oci.digest import Digest

ChunkHook = Callable[[bytes], None]
FULL = frozenset({errno.ENOSPC, errno.EDQUOT})  # the errnos of "no space left"


class StorageError(Exception):
    """A storage operation failed for a reason the client may be told about."""


class StorageUnavailable(StorageError):
    """The storage could not do its part (a local I/O error; S3 SlowDown, 5xx or timeouts even
    after the driver's retries): not the client's fault; the API answers a retryable 503 +
    Retry-After envelope. The original error is ``__cause__`` when there is one."""


class StorageFull(StorageUnavailable):
    """No space (or quota) left: the API answers 507 with a clear message."""


class BlobNotFound(StorageError):
    pass


class UploadNotFound(StorageError):
    pass


class DigestMismatch(StorageError):
    def __init__(self, expected: Digest, actual: Digest) -> None:
        super().__init__(f"content digest {actual} does not match {expected}")
        self.expected, self.actual = expected, actual


@dataclass(frozen=True, slots=True)
class BlobInfo:
    digest: Digest
    size: int
    mtime: float


class BlobStore(Protocol):
    async def stat(self, digest: Digest) -> int | None:
        """Size of the blob, or None when it is not stored."""

    def local_path(self, digest: Digest) -> str | None:
        """A filesystem path the web server may ``sendfile`` from, or None (remote drivers)."""

    def read(self, digest: Digest, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Stream bytes [offset, offset+length) of the blob. Raises BlobNotFound. A block may be
        reused by the driver once the next one is asked for: write or copy it before that."""

    async def get(self, digest: Digest) -> bytes:
        """The whole blob; only for small blobs (manifests)."""

    async def put(self, digest: Digest, data: bytes) -> None:
        """Store a small blob after verifying its digest (DigestMismatch otherwise)."""

    async def touch(self, digest: Digest) -> None:
        """Mark the blob as recently used so the garbage collector's grace period covers it."""

    async def delete(self, digest: Digest, older_than: float | None = None) -> bool:
        """Remove the blob's bytes; False when there were none, or (with ``older_than``, a
        timestamp) when the blob was modified or touched at or after it."""

    def iter_blobs(self) -> AsyncIterator[BlobInfo]:
        """Every stored blob with its size and modification time (for GC)."""


class UploadStore(Protocol):
    async def create_upload(self, upload_id: str) -> None:
        """Make an empty staging area."""

    async def upload_size(self, upload_id: str) -> int | None:
        """Bytes staged so far, or None when there is no such upload."""

    async def append_upload(self, upload_id: str, chunks: AsyncIterator[bytes], hook: ChunkHook | None = None) -> int:
        """Append every chunk in order, calling ``hook(chunk)`` on each (off the event loop, for
        hashing) before it is written. Returns the new size, even when the stream broke
        (then the exception propagates after the size was recorded)."""

    def read_upload(self, upload_id: str) -> AsyncIterator[bytes]:
        """Stream the staged bytes (to re-hash a session resumed after a restart)."""

    async def commit_upload(self, upload_id: str, digest: Digest) -> int:
        """Make the staged bytes the blob ``digest`` (already verified by the caller): fsync,
        atomic rename, remove the staging area. Idempotent when the blob already exists
        (stored once). Returns the size."""

    async def delete_upload(self, upload_id: str) -> None:
        """Remove the staging area; no error when it is already gone."""

    def iter_uploads(self) -> AsyncIterator[tuple[str, float]]:
        """(upload id, last modification time) of every staging area."""


# Optional capabilities (looked up with getattr; the filesystem driver has none of them):
#   async upload_digest(upload_id, algorithm) -> (Digest, size) | None
#       the digest of the staged bytes kept by the driver itself across processes (S3: a
#       resumable SHA-256 state saved with the session), so no replica needs to re-hash;
#   resumable_hash: bool = True when upload_digest is offered for sha256 (callers skip hooks);
#   async redirect_url(digest) -> str | None
#       a URL a client may fetch the blob from directly (S3 with ``redirect: true``).


class StorageDriver(BlobStore, UploadStore, Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

"""The S3 storage driver: blobs as objects in one bucket, through aiobotocore.

Keys (every one begins with ``prefix``)::

    <prefix>blobs/<alg>/<hex[:2]>/<hex>     one object per blob, whatever number of repositories
                                            hold it (content addressed: stored once)
    <prefix>touched/<alg>/<hex[:2]>/<hex>   empty marker: "in use again at LastModified", written
                                            by ``touch`` so the GC grace period covers a blob
                                            without copying its bytes onto itself
    <prefix>uploads/<id>/...                upload sessions (state, pieces, multipart data):
                                            see registry/storage/s3_uploads.py

aiobotocore was chosen because it is botocore (the AWS SDK's own request signing, retry modes,
credential chain, presigning) running on aiohttp, the event loop and HTTP stack the registry
already uses: no thread pool per request, no second HTTP client, streaming bodies both ways.

Failures: botocore's "standard" retry mode retries throttling (SlowDown), 5xx and connection
errors with exponential backoff and jitter (``retries`` retries, ``timeout`` per attempt);
what still fails becomes StorageUnavailable, which the API answers with a 503 envelope and
Retry-After. "Not found" answers become BlobNotFound / UploadNotFound / None.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator

import aiohttp
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from oci.digest import ALGORITHMS, Digest

from .driver import BlobInfo, BlobNotFound, ChunkHook, DigestMismatch, StorageError, StorageUnavailable
from .resumable_sha256 import AVAILABLE as RESUMABLE_SHA256
from .s3_deletes import DeleteBatcher
from .s3_reads import PIECE, PieceBudget, RangeFetcher, needs_proxy, read_ranges
from .s3_settings import S3Settings
from .s3_splice import SPLICE_MIN, SpliceSender
from .s3_splice import available as splice_available

READ_CHUNK = 1 << 20
WRITE_SLICE = 1 << 20
MAX_COPY = 5 << 30           # CopyObject's limit; bigger objects are copied in parts
COPY_PART = 1 << 30
_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchUpload"}


_SESSION: Any = None


def _session() -> Any:
    # One botocore session per process: it caches the parsed service model (~0.3 s to load).
    global _SESSION
    if _SESSION is None:
        _SESSION = get_session()
    return _SESSION


class Missing(Exception):
    """The object (or multipart upload) asked for does not exist; callers say which kind."""


class S3Driver:
    """Implements registry.storage.driver.StorageDriver on an S3-compatible bucket."""

    resumable_hash = RESUMABLE_SHA256
    single_put_limit = 4 << 20   # monolithic uploads up to this size: one PutObject

    def __init__(self, settings: S3Settings) -> None:
        from .s3_uploads import S3Uploads

        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        self.client: Any = None
        self._stack = contextlib.AsyncExitStack()
        self.uploads = S3Uploads(self)
        self.piece_budget = PieceBudget()
        self.fetcher: RangeFetcher | None = None
        self.splicer: SpliceSender | None = None
        self.deferred_deletes = DeleteBatcher(self)

    # -- client ---------------------------------------------------------------------------------
    async def open(self) -> None:
        s = self.settings
        config = Config(
            region_name=s.region, signature_version="s3v4",
            # payload_signing_enabled=False: no SHA-256 of every body on the event loop (botocore
            # signs payloads on http endpoints); the registry verifies each blob's digest itself,
            # and over https TLS protects the bytes, which is what botocore relies on there.
            s3={"addressing_style": "path", "payload_signing_enabled": s.sign_payload},
            retries={"max_attempts": s.retries, "mode": "standard"},
            connect_timeout=s.timeout, read_timeout=s.timeout, max_pool_connections=64,
            parameter_validation=False,  # our calls are fixed in code; saves CPU on every request
            # Checksums only where S3 requires them: many S3-compatible servers reject the newer
            # default trailing-checksum encoding, and the digest is verified by us anyway.
            request_checksum_calculation="when_required", response_checksum_validation="when_required",
        )
        kwargs: dict[str, Any] = {"region_name": s.region, "config": config}
        if s.endpoint:
            kwargs["endpoint_url"] = s.endpoint
        if s.access_key:
            kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"] = s.access_key, s.secret_key
        self.client = await self._stack.enter_async_context(_session().create_client("s3", **kwargs))
        # Big reads bypass botocore's HTTP client (s3_reads.py), which would also apply proxy
        # settings: with a proxy configured for the endpoint, keep every read on aiobotocore.
        self.fetcher = None if needs_proxy(s.endpoint) else RangeFetcher(attempts=s.retries + 1)
        # Streamed GETs spliced socket to socket (s3_splice.py): only where the bytes on the S3
        # connection are the object's (plain http, no proxy).
        if self.fetcher is not None and s.endpoint.startswith("http://") and splice_available():
            self.splicer = SpliceSender(s.endpoint, s.timeout, attempts=s.retries + 1)
        try:
            await self.call("head_bucket")
        except Missing:
            await self.close()
            raise StorageError(f"storage.bucket: bucket {self.bucket!r} does not exist at "
                               f"{s.endpoint or 'AWS'}") from None
        except StorageUnavailable:
            await self.close()
            raise

    async def close(self) -> None:
        if self.client is not None:
            await self.deferred_deletes.flush()
        if self.fetcher is not None:
            self.fetcher.close()
            self.fetcher = None
        if self.splicer is not None:
            self.splicer.close()
            self.splicer = None
        await self._stack.aclose()
        self.client = None

    async def call(self, op: str, **kwargs: Any) -> Any:
        """One S3 operation on the bucket, with errors mapped (see the module docstring)."""
        try:
            return await getattr(self.client, op)(Bucket=self.bucket, **kwargs)
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _NOT_FOUND or (status == 404 and op.startswith("head")):
                raise Missing(code) from None
            raise StorageUnavailable(f"S3 {op} failed: {code or status}") from None
        except (BotoCoreError, aiohttp.ClientError, asyncio.TimeoutError) as e:
            raise StorageUnavailable(f"S3 {op} failed: {e.__class__.__name__}") from None

    async def paginate(self, op: str, **kwargs: Any) -> AsyncIterator[dict]:
        try:
            async for page in self.client.get_paginator(op).paginate(Bucket=self.bucket, **kwargs):
                yield page
        except ClientError as e:
            raise StorageUnavailable(f"S3 {op} failed: {e.response.get('Error', {}).get('Code', '')}") from None
        except (BotoCoreError, aiohttp.ClientError, asyncio.TimeoutError) as e:
            raise StorageUnavailable(f"S3 {op} failed: {e.__class__.__name__}") from None

    async def stream(self, key: str, byte_range: str | None = None) -> AsyncIterator[bytes]:
        """The object's bytes (or a ``bytes=a-b`` range of them) as they arrive. Raises Missing."""
        kwargs = {"Range": byte_range} if byte_range else {}
        resp = await self.call("get_object", Key=key, **kwargs)
        body = resp["Body"]
        try:
            # The HTTP client hands over whatever arrived (often 64 KiB); gathering ~1 MiB per
            # block makes each trip through the registry's response writer worth its cost.
            pending = bytearray()
            while block := await body.read(READ_CHUNK):
                if not pending and len(block) >= READ_CHUNK // 2:
                    yield block
                    continue
                pending += block
                if len(pending) >= READ_CHUNK // 2:
                    yield bytes(pending)
                    pending.clear()
            if pending:
                yield bytes(pending)
        except (BotoCoreError, aiohttp.ClientError, asyncio.TimeoutError) as e:
            raise StorageUnavailable(f"S3 GetObject body: {e.__class__.__name__}") from None
        finally:
            body.close()

    async def read_object(self, key: str) -> bytes:
        return b"".join([b async for b in self.stream(key)])

    async def copy_object(self, src: str, dest: str, size: int) -> None:
        """Server-side copy: no blob bytes pass through the registry."""
        source = {"Bucket": self.bucket, "Key": src}
        if size <= MAX_COPY:
            await self.call("copy_object", Key=dest, CopySource=source)
            return
        mpu = await self.call("create_multipart_upload", Key=dest)
        try:
            parts = []
            for n, offset in enumerate(range(0, size, COPY_PART), start=1):
                end = min(offset + COPY_PART, size) - 1
                r = await self.call("upload_part_copy", Key=dest, UploadId=mpu["UploadId"], PartNumber=n,
                                    CopySource=source, CopySourceRange=f"bytes={offset}-{end}")
                parts.append({"PartNumber": n, "ETag": r["CopyPartResult"]["ETag"]})
            await self.call("complete_multipart_upload", Key=dest, UploadId=mpu["UploadId"],
                            MultipartUpload={"Parts": parts})
        except BaseException:
            with contextlib.suppress(Exception):
                await self.call("abort_multipart_upload", Key=dest, UploadId=mpu["UploadId"])
            raise

    async def delete_keys(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": k} for k in keys[i:i + 1000]]
            await self.call("delete_objects", Delete={"Objects": batch, "Quiet": True})

    # -- keys -----------------------------------------------------------------------------------
    def blob_key(self, digest: Digest) -> str:
        return f"{self.prefix}blobs/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"

    def marker_key(self, digest: Digest) -> str:
        return f"{self.prefix}touched/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"

    def _digest_of_key(self, key: str, top: str) -> Digest | None:
        parts = key[len(self.prefix) + len(top):].split("/")
        if len(parts) != 3 or parts[0] not in ALGORITHMS:
            return None
        try:
            return Digest.parse(f"{parts[0]}:{parts[2]}")
        except ValueError:
            return None

    # -- blobs ----------------------------------------------------------------------------------
    async def stat(self, digest: Digest) -> int | None:
        try:
            return int((await self.call("head_object", Key=self.blob_key(digest)))["ContentLength"])
        except Missing:
            return None

    async def blob_info(self, digest: Digest) -> BlobInfo | None:
        """Size and last use (the later of the write and the last ``touch``), or None."""
        async def head(key: str) -> dict | None:
            try:
                return await self.call("head_object", Key=key)
            except Missing:
                return None

        blob, marker = await asyncio.gather(head(self.blob_key(digest)), head(self.marker_key(digest)))
        if blob is None:
            return None
        mtime = blob["LastModified"].timestamp()
        if marker is not None:
            mtime = max(mtime, marker["LastModified"].timestamp())
        return BlobInfo(digest, int(blob["ContentLength"]), mtime)

    def local_path(self, digest: Digest) -> str | None:
        return None

    async def redirect_url(self, digest: Digest) -> str | None:
        if not self.settings.redirect:
            return None
        return await self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.blob_key(digest)},
            ExpiresIn=int(self.settings.redirect_expiry))

    async def send_direct(self, request: Any, resp: Any, digest: Digest, offset: int, length: int) -> int:
        """Bytes [offset, offset+length) of the blob sent as ``resp``'s body straight from S3's
        socket to the client's by the kernel (s3_splice.py); returns how many went that way
        (0: this read cannot), the caller streams the rest with ``read``. Raises BlobNotFound."""
        if self.splicer is None or length < SPLICE_MIN:
            return 0
        try:
            return await self.splicer.send(self, request, resp, self.blob_key(digest), offset, length)
        except Missing:
            raise BlobNotFound(str(digest)) from None

    async def read(self, digest: Digest, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        if length == 0:
            if await self.stat(digest) is None:
                raise BlobNotFound(str(digest))
            return
        if length is not None and length > PIECE and self.fetcher is not None:
            # Big reads: concurrent ranged GETs into whole buffers (registry/storage/s3_reads.py).
            try:
                async with contextlib.aclosing(read_ranges(self, self.blob_key(digest), offset, length)) as pieces:
                    async for piece in pieces:
                        # Slices the client socket can take whole: a write the kernel accepts at
                        # once is never copied into the transport's buffer first.
                        for at in range(0, len(piece), WRITE_SLICE):
                            yield piece[at:at + WRITE_SLICE]
            except Missing:
                raise BlobNotFound(str(digest)) from None
            return
        byte_range = None
        if offset or length is not None:
            byte_range = f"bytes={offset}-" + ("" if length is None else str(offset + length - 1))
        try:
            async for block in self.stream(self.blob_key(digest), byte_range):
                yield block
        except Missing:
            raise BlobNotFound(str(digest)) from None

    async def get(self, digest: Digest) -> bytes:
        try:
            return await self.read_object(self.blob_key(digest))
        except Missing:
            raise BlobNotFound(str(digest)) from None

    async def put(self, digest: Digest, data: bytes) -> None:
        actual = Digest.of(data, digest.algorithm)
        if actual != digest:
            raise DigestMismatch(digest, actual)
        # Overwriting an existing blob writes the same bytes and refreshes LastModified: a touch.
        await self.call("put_object", Key=self.blob_key(digest), Body=data, ContentType="application/octet-stream")

    async def touch(self, digest: Digest) -> None:
        if await self.stat(digest) is None:
            raise BlobNotFound(str(digest))
        await self.call("put_object", Key=self.marker_key(digest), Body=b"")

    async def delete(self, digest: Digest, older_than: float | None = None) -> bool:
        info = await self.blob_info(digest)
        if info is None or (older_than is not None and info.mtime >= older_than):
            return False
        await self.delete_keys([self.blob_key(digest), self.marker_key(digest)])
        return True

    async def _markers(self) -> dict[str, float]:
        out: dict[str, float] = {}
        async for page in self.paginate("list_objects_v2", Prefix=f"{self.prefix}touched/"):
            for obj in page.get("Contents", ()):
                d = self._digest_of_key(obj["Key"], "touched/")
                if d is not None:
                    out[str(d)] = obj["LastModified"].timestamp()
        return out

    async def iter_blobs(self) -> AsyncIterator[BlobInfo]:
        touched = await self._markers()
        async for page in self.paginate("list_objects_v2", Prefix=f"{self.prefix}blobs/"):
            for obj in page.get("Contents", ()):
                d = self._digest_of_key(obj["Key"], "blobs/")
                if d is None:
                    continue
                mtime = max(obj["LastModified"].timestamp(), touched.get(str(d), 0.0))
                yield BlobInfo(d, int(obj["Size"]), mtime)

    # -- uploads: see s3_uploads.py -------------------------------------------------------------
    async def create_upload(self, upload_id: str) -> None:
        await self.uploads.create(upload_id)

    async def upload_size(self, upload_id: str) -> int | None:
        return await self.uploads.size(upload_id)

    async def upload_digest(self, upload_id: str, algorithm: str) -> tuple[Digest, int] | None:
        return await self.uploads.digest(upload_id, algorithm)

    async def append_upload(self, upload_id: str, chunks: AsyncIterator[bytes], hook: ChunkHook | None = None) -> int:
        return await self.uploads.append(upload_id, chunks, hook)

    def read_upload(self, upload_id: str) -> AsyncIterator[bytes]:
        return self.uploads.read(upload_id)

    async def commit_upload(self, upload_id: str, digest: Digest) -> int:
        return await self.uploads.commit(upload_id, digest)

    async def delete_upload(self, upload_id: str) -> None:
        await self.uploads.delete(upload_id)

    async def discard_empty_upload(self, upload_id: str) -> None:
        await self.uploads.discard_empty(upload_id)

    def iter_uploads(self) -> AsyncIterator[tuple[str, float]]:
        return self.uploads.iter()

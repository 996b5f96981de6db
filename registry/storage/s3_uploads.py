"""Upload sessions on S3 that any replica can continue: multipart parts, pieces, a saved hash.

The problem. Clients send a blob as PATCH chunks of any size, one after the other, and behind a
load balancer without stickiness each PATCH (and the status GET, and the final PUT) may reach a
different replica. S3 multipart uploads refuse parts under 5 MiB except the last one, parts of
an unfinished multipart upload cannot be read back, and Python's hashlib cannot save a hash's
state. Keeping the session in one process would break the first time nginx picks another
replica; re-reading every staged byte at commit would double the traffic of every push.

The design. Everything about a session lives in the bucket, in one small JSON object that is
rewritten at the end of every PATCH (S3 writes of one object are atomic, so a reader sees the
old or the new session, never half of one)::

    <prefix>uploads/<id>/state.json   {"size", "seq", "gen", "sha256": saved hash state,
                                       "mpu": {"id", "key", "parts": [{n, etag, size}]} | null,
                                       "objects": [{"key", "size"}]}
    <prefix>uploads/<id>/piece-<seq>-<token>  bytes that arrived after the parts: < 5 MiB in
                                      total (token: random per PATCH, see "Racing PATCHes")
    <prefix>uploads/<id>/data-<gen>   the multipart upload's target (or a consolidated copy)

The staged bytes are, in order: the multipart parts, then ``objects``. A PATCH streams its body
into 8 MiB parts as it arrives (one part uploading while the next is received: at most two
parts of memory per upload, never a whole layer, nothing on local disk). Before new bytes can go
into a part, the pieces in front of them are folded in: a piece is read back (it is small) and
its bytes lead the next part; an object of 5 MiB or more (a consolidated upload) becomes a part
by UploadPartCopy, server-side. Whatever is left at the end of a PATCH that cannot form a 5 MiB
part is written as one new piece. Then state.json is saved, and only then are folded pieces
deleted: a crash before the save leaves the previous state intact (an unrecorded part number or
piece name is simply written again by the retry), so an acknowledged PATCH is never lost and an
unacknowledged one is never half-counted.

Hashing. The SHA-256 of the staged bytes is kept as OpenSSL's SHA256_CTX bytes
(registry/storage/resumable_sha256.py), updated as bytes arrive and saved in state.json with the
size it covers; any replica resumes it, so the PUT needs no re-read. Cost: the hash runs once per
byte (as hashlib would), a PATCH costs one extra small GET and PUT (the state), and a chunk under
5 MiB is written twice (as a piece, then inside a part). Without that library, and for sha512
digests, ``read`` consolidates the session (completes the multipart upload into data-<gen>) and
the caller re-hashes it: one extra read of the blob, measured in bench/.

Commit. The final pieces become the last part (which may be small), the multipart upload is
completed, and the result is server-side copied to the blob's content address; a session with no
multipart upload (under 5 MiB) is copied from its one piece or written with one PUT. Then every
staging key of the session is deleted in one DeleteObjects, before the registry answers 201.

Racing PATCHes. Two PATCHes of the *same* session at once on two replicas (the protocol forbids
it; a hostile client may try) are not serialised: the later state.json wins and the client's next
Range check says so. What must not happen is a state whose bytes are not the bytes its hash
covers (bytes stored under a digest they do not have): so a piece's name carries a random token
(the racer's pieces never overwrite ours), and a part uploaded twice under one number is taken
by the ETag the winning state recorded (S3 refuses a stale ETag; SeaweedFS completes with the
part version that ETag names). Either state is then self-consistent, or its commit fails.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
from typing import TYPE_CHECKING, Any, AsyncIterator

from oci.digest import Digest

from .driver import ChunkHook, StorageError, UploadNotFound
from .layout import UPLOAD_ID_RE
from .resumable_sha256 import AVAILABLE as RESUMABLE_SHA256, ResumableSha256

if TYPE_CHECKING:
    from .s3 import S3Driver

MIN_PART = 5 << 20       # S3's minimum for every part but the last
PART_SIZE = 8 << 20      # what a PATCH stream is cut into
HASH_BLOCK = 1 << 20     # incoming chunks are gathered to this size before hashing off the loop


class _Session:
    """state.json as an object."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.size: int = doc["size"]
        self.seq: int = doc.get("seq", 0)
        self.gen: int = doc.get("gen", 0)
        self.mpu: dict[str, Any] | None = doc.get("mpu")
        self.objects: list[dict[str, Any]] = doc.get("objects", [])
        sha = doc.get("sha256")
        self.sha256: bytes | None = base64.b64decode(sha) if sha else None

    def to_json(self) -> bytes:
        return json.dumps({
            "size": self.size, "seq": self.seq, "gen": self.gen, "mpu": self.mpu, "objects": self.objects,
            "sha256": base64.b64encode(self.sha256).decode() if self.sha256 else None,
        }).encode()

    @property
    def objects_size(self) -> int:
        return sum(o["size"] for o in self.objects)

    def hasher(self) -> ResumableSha256 | None:
        if self.sha256 is None or not RESUMABLE_SHA256:
            return None
        try:
            return ResumableSha256(self.sha256)
        except ValueError:
            return None


class _Writer:
    """Moves new bytes of one session into parts and pieces (see the module docstring)."""

    def __init__(self, store: "S3Uploads", upload_id: str, session: _Session) -> None:
        self.store, self.s3, self.id, self.session = store, store.s3, upload_id, session
        self.buf: list[bytes] = []
        self.buf_size = 0
        self.folded: list[str] = []   # keys of objects now inside parts: deleted after the save
        self.in_flight: asyncio.Task | None = None

    async def add(self, block: bytes) -> None:
        self.buf.append(block)
        self.buf_size += len(block)
        if self.session.objects and self.session.objects_size + self.buf_size >= PART_SIZE:
            await self._fold_objects()
        while self.buf_size >= PART_SIZE:
            await self._send(self._take(PART_SIZE))

    async def end_of_patch(self) -> None:
        """Store what is left: as a part when it makes one, else as a piece."""
        await self._wait()
        if self.session.objects and self.session.objects_size + self.buf_size >= MIN_PART:
            await self._fold_objects()
        if self.buf_size >= MIN_PART:
            await self._send(self._take(self.buf_size))
        await self._wait()
        if self.buf_size:
            self.session.seq += 1
            key = self.store.key(self.id, f"piece-{self.session.seq:06d}-{os.urandom(4).hex()}")
            data = self._take(self.buf_size)
            await self.s3.call("put_object", Key=key, Body=data)
            self.session.objects.append({"key": key, "size": len(data)})

    async def complete(self) -> str:
        """Finish the multipart upload with everything staged as its last parts; its key."""
        await self._fold_objects()
        if self.buf_size:
            await self._send(self._take(self.buf_size))  # the last part may be small
        await self._wait()
        mpu = self.session.mpu
        assert mpu is not None
        parts = [{"PartNumber": p["n"], "ETag": p["etag"]} for p in mpu["parts"]]
        await self.s3.call("complete_multipart_upload", Key=mpu["key"], UploadId=mpu["id"],
                           MultipartUpload={"Parts": parts})
        return mpu["key"]

    def _take(self, n: int) -> bytes:
        data = b"".join(self.buf)
        head, rest = data[:n], data[n:]
        self.buf = [rest] if rest else []
        self.buf_size = len(rest)
        return head

    async def _fold_objects(self) -> None:
        # By construction an object of MIN_PART or more can only be the first one (a
        # consolidated session); every other object is a piece under MIN_PART.
        head: list[bytes] = []
        for obj in self.session.objects:
            if obj["size"] >= MIN_PART and not head:
                await self._wait()
                await self._copy_part(obj)
            else:
                head.append(await self.s3.read_object(obj["key"]))
            self.folded.append(obj["key"])
        self.session.objects = []
        self.buf = head + self.buf
        self.buf_size = sum(len(b) for b in self.buf)

    async def _ensure_mpu(self) -> dict[str, Any]:
        if self.session.mpu is None:
            key = self.store.key(self.id, f"data-{self.session.gen:06d}")
            r = await self.s3.call("create_multipart_upload", Key=key, ContentType="application/octet-stream")
            self.session.mpu = {"id": r["UploadId"], "key": key, "parts": []}
            # Recorded at once (same size and hash as before), so no multipart upload is ever
            # unknown to the session and left behind by a crash.
            await self.store.save(self.id, self.session)
        return self.session.mpu

    async def _send(self, data: bytes) -> None:
        await self._wait()
        mpu = await self._ensure_mpu()
        n = len(mpu["parts"]) + 1
        self.in_flight = asyncio.create_task(self._upload_part(mpu, n, data))

    async def _upload_part(self, mpu: dict[str, Any], n: int, data: bytes) -> None:
        r = await self.s3.call("upload_part", Key=mpu["key"], UploadId=mpu["id"], PartNumber=n, Body=data)
        mpu["parts"].append({"n": n, "etag": r["ETag"], "size": len(data)})

    async def _copy_part(self, obj: dict[str, Any]) -> None:
        mpu = await self._ensure_mpu()
        size, step = obj["size"], 1 << 30   # UploadPartCopy: at most 5 GiB per part
        count = max(1, -(-size // step))
        step = -(-size // count)            # equal slices, each >= MIN_PART since size is
        for offset in range(0, size, step):
            end = min(offset + step, size) - 1
            n = len(mpu["parts"]) + 1
            r = await self.s3.call("upload_part_copy", Key=mpu["key"], UploadId=mpu["id"], PartNumber=n,
                                   CopySource={"Bucket": self.s3.bucket, "Key": obj["key"]},
                                   CopySourceRange=f"bytes={offset}-{end}")
            mpu["parts"].append({"n": n, "etag": r["CopyPartResult"]["ETag"], "size": end - offset + 1})

    async def _wait(self) -> None:
        task, self.in_flight = self.in_flight, None
        if task is not None:
            await task


class S3Uploads:
    def __init__(self, s3: "S3Driver") -> None:
        self.s3 = s3

    def key(self, upload_id: str, name: str = "") -> str:
        if not UPLOAD_ID_RE.match(upload_id):
            raise ValueError(f"invalid upload id {upload_id!r}")
        return f"{self.s3.prefix}uploads/{upload_id}/{name}"

    async def load(self, upload_id: str) -> _Session:
        from .s3 import Missing

        try:
            return _Session(json.loads(await self.s3.read_object(self.key(upload_id, "state.json"))))
        except Missing:
            raise UploadNotFound(upload_id) from None

    async def save(self, upload_id: str, session: _Session) -> None:
        await self.s3.call("put_object", Key=self.key(upload_id, "state.json"), Body=session.to_json(),
                           ContentType="application/json")

    async def create(self, upload_id: str) -> None:
        sha = ResumableSha256().state() if RESUMABLE_SHA256 else None
        await self.save(upload_id, _Session({"size": 0, "sha256": base64.b64encode(sha).decode() if sha else None}))

    async def size(self, upload_id: str) -> int | None:
        try:
            return (await self.load(upload_id)).size
        except (UploadNotFound, ValueError):
            return None

    async def digest(self, upload_id: str, algorithm: str) -> tuple[Digest, int] | None:
        session = await self.load(upload_id)
        hasher = session.hasher() if algorithm == "sha256" else None
        if hasher is None:
            return None
        return Digest.parse(f"sha256:{hasher.hexdigest()}"), session.size

    async def append(self, upload_id: str, chunks: AsyncIterator[bytes], hook: ChunkHook | None = None) -> int:
        session = await self.load(upload_id)
        hasher = session.hasher()
        writer = _Writer(self, upload_id, session)
        loop = asyncio.get_running_loop()
        received = 0

        def digest_block(block: bytes) -> None:
            if hook is not None:
                hook(block)
            if hasher is not None:
                hasher.update(block)

        async def accept(parts: list[bytes]) -> None:
            nonlocal received
            block = b"".join(parts)
            await loop.run_in_executor(None, digest_block, block)
            received += len(block)
            await writer.add(block)

        pending: list[bytes] = []
        pending_size = 0
        broken: BaseException | None = None
        stream = chunks.__aiter__()
        try:
            while True:
                try:
                    chunk = await stream.__anext__()
                except StopAsyncIteration:
                    break
                except Exception as e:  # the client's stream broke: keep what arrived
                    broken = e
                    break
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= HASH_BLOCK:
                    block, pending, pending_size = pending, [], 0
                    await accept(block)
            if pending:
                await accept(pending)
            if received:
                await writer.end_of_patch()
                session.size += received
                session.sha256 = hasher.state() if hasher is not None else None
                # The commit point of this PATCH: before it, the previous state still holds.
                await self.save(upload_id, session)
        except BaseException:
            # A storage failure: nothing of this PATCH is recorded (the client retries it).
            if writer.in_flight is not None:
                writer.in_flight.cancel()
            raise
        if writer.folded:
            # Already outside the saved session; a failure here leaves garbage that the
            # session's cancel or expiry lists and removes, never a wrong session.
            with contextlib.suppress(StorageError):
                await self.s3.delete_keys(writer.folded)
        if broken is not None:
            raise broken
        return session.size

    async def consolidate(self, upload_id: str) -> _Session:
        """Make the staged bytes one readable object (for a re-hash); returns the new state."""
        session = await self.load(upload_id)
        if session.mpu is None and len(session.objects) <= 1:
            return session
        writer = _Writer(self, upload_id, session)
        if session.mpu is not None:
            key = await writer.complete()
        else:
            key = self.key(upload_id, f"data-{session.gen:06d}")
            data = b"".join([await self.s3.read_object(o["key"]) for o in session.objects])  # < 5 MiB
            await self.s3.call("put_object", Key=key, Body=data)
            writer.folded = [o["key"] for o in session.objects]
        session.mpu, session.objects, session.gen = None, [{"key": key, "size": session.size}], session.gen + 1
        await self.save(upload_id, session)
        await self.s3.delete_keys([k for k in writer.folded if k != key])
        return session

    async def read(self, upload_id: str) -> AsyncIterator[bytes]:
        session = await self.consolidate(upload_id)
        for obj in session.objects:
            async for block in self.s3.stream(obj["key"]):
                yield block

    async def commit(self, upload_id: str, digest: Digest) -> int:
        session = await self.load(upload_id)
        dest = self.s3.blob_key(digest)
        writer = _Writer(self, upload_id, session)
        staged = [o["key"] for o in session.objects]
        if session.mpu is not None and not session.mpu["parts"] and session.objects_size < MIN_PART:
            # A multipart upload whose first part never made it (a PATCH failed right after
            # creating it): nothing is in it, so drop it and write the pieces with one PUT.
            from .s3 import Missing

            with contextlib.suppress(Missing):
                await self.s3.call("abort_multipart_upload", Key=session.mpu["key"], UploadId=session.mpu["id"])
            session.mpu = None
        if session.mpu is not None:
            source = await writer.complete()
            staged.append(source)
            await self.s3.copy_object(source, dest, session.size)
        elif len(session.objects) == 1:
            await self.s3.copy_object(session.objects[0]["key"], dest, session.size)
        else:
            # Under 5 MiB in pieces (or empty): one PUT of the bytes at the content address.
            data = b"".join([await self.s3.read_object(k) for k in staged])
            await self.s3.call("put_object", Key=dest, Body=data, ContentType="application/octet-stream")
        # Copying onto an existing blob rewrote the same bytes: stored once, and touched.
        await self.s3.delete_keys([*staged, *writer.folded, self.key(upload_id, "state.json")])
        return session.size

    async def delete(self, upload_id: str) -> None:
        from .s3 import Missing

        try:
            session = await self.load(upload_id)
        except UploadNotFound:
            session = None
        if session is not None and session.mpu is not None:
            with contextlib.suppress(Missing):
                await self.s3.call("abort_multipart_upload", Key=session.mpu["key"], UploadId=session.mpu["id"])
        # Whatever is listed under the session's prefix goes: its state names most keys, but not
        # the piece or multipart upload of a PATCH that crashed (or raced) before saving it.
        prefix = self.key(upload_id)
        keys = [o["Key"] async for page in self.s3.paginate("list_objects_v2", Prefix=prefix)
                for o in page.get("Contents", ())]
        async for page in self.s3.paginate("list_multipart_uploads", Prefix=prefix):
            for up in page.get("Uploads", ()):
                with contextlib.suppress(Missing):
                    await self.s3.call("abort_multipart_upload", Key=up["Key"], UploadId=up["UploadId"])
        if keys:
            await self.s3.delete_keys(keys)

    async def discard_empty(self, upload_id: str) -> None:
        """Forget a session known to hold no bytes: its state, deleted in a shared batch shortly
        after (s3_deletes.py). A piece or multipart upload a first PATCH wrote before crashing
        keeps the session listed by ``iter``, so the upload expiry removes it as an orphan."""
        self.s3.deferred_deletes.add([self.key(upload_id, "state.json")])

    async def iter(self) -> AsyncIterator[tuple[str, float]]:
        """(id, newest LastModified) of every session with anything staged, orphans included:
        also a multipart upload no state names any more (a first PATCH that crashed after
        creating it, then the session discarded as empty), so the upload expiry aborts it."""
        top = f"{self.s3.prefix}uploads/"
        newest: dict[str, float] = {}

        def seen(key: str, when: Any) -> None:
            upload_id = key[len(top):].split("/", 1)[0]
            if UPLOAD_ID_RE.match(upload_id):
                newest[upload_id] = max(when.timestamp(), newest.get(upload_id, 0.0))

        async for page in self.s3.paginate("list_objects_v2", Prefix=top):
            for obj in page.get("Contents", ()):
                seen(obj["Key"], obj["LastModified"])
        async for page in self.s3.paginate("list_multipart_uploads", Prefix=top):
            for up in page.get("Uploads", ()):
                seen(up["Key"], up["Initiated"])
        for item in newest.items():
            yield item

"""Blob uploads: monolithic POST, POST+PUT, chunked and streamed PATCH, status, cancel, mount.

The session lives in two places: a row in the index (which repository it belongs to, when it
was last used, whether its staging area was made) and a staging file in storage (its bytes; the
size is the file's size). Both survive a restart. On the filesystem driver with SQLite the
staging area is made only when the first bytes are appended (``_stage``): the common push of a
small blob (POST, then PUT with the body) makes and removes none. Every response about a
session carries Location, Range and Docker-Upload-UUID, as Docker clients and the spec expect.
"""
from __future__ import annotations

import asyncio
import re

from aiohttp import web

from oci.digest import Digest, InvalidDigest
from oci.reference import InvalidReference, validate_name

from ..lifecycle import QUOTAS, enforce_quota
from ..lifecycle.quotas import namespace_of
from ..lifecycle.hooks import BytesSwept, blob_refused
from ..storage.driver import BlobNotFound, DigestMismatch, UploadNotFound
from ..storage.layout import UPLOAD_ID_RE
from .common import (READ_CHUNK, blob_location, client_key, config, index, may_pull, parse_digest, repo_name,
                     storage, upload_location, uploads)
from .errors import (BlobUploadInvalid, BlobUploadUnknown, DigestInvalid, RangeInvalid, SizeInvalid, TooManyRequests,
                     Unavailable)

CONTENT_RANGE_RE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?$")


def _range(size: int) -> str:
    # Distribution's convention: "0-0" for an empty session, else the last byte's offset.
    return f"0-{max(size - 1, 0)}"


def _session_headers(name: str, upload_id: str, size: int) -> dict[str, str]:
    return {
        "Location": upload_location(name, upload_id),
        "Range": _range(size),
        "Docker-Upload-UUID": upload_id,
    }


def _blob_created(name: str, digest: Digest) -> web.Response:
    return web.Response(
        status=201,
        headers={"Location": blob_location(name, digest), "Docker-Content-Digest": str(digest)},
    )


async def _new_session(request: web.Request, name: str) -> str:
    client = client_key(request)
    sessions = uploads(request)
    if _inline(request):
        # One thread call (the index's writer) counts for the caps and writes the row; the
        # staging area waits for the first appended byte (_stage).
        cfg = config(request)
        upload_id = sessions.reserve()
        try:
            refused = await index(request).open_upload(
                upload_id, name, client, (cfg.max_open_uploads_per_repository, cfg.max_open_uploads_per_client))
        except BaseException:
            sessions.forget(upload_id)
            raise
        if refused is not None:
            sessions.forget(upload_id)
            _refuse_open_sessions(request, name, *refused)
        return upload_id
    await _check_open_sessions(request, name, client)
    upload_id = await sessions.start()
    await index(request).create_upload(upload_id, name, client)
    return upload_id


async def _check_open_sessions(request: web.Request, name: str, client: str) -> None:
    """Cap open sessions per repository and per client (#13.10): abandoned sessions otherwise
    stay for the whole upload_expiry. Monolithic uploads open none and are never refused."""
    cfg = config(request)
    if not cfg.max_open_uploads_per_repository and not cfg.max_open_uploads_per_client:
        return
    _refuse_open_sessions(request, name, *await index(request).open_uploads(name, client))


def _refuse_open_sessions(request: web.Request, name: str, by_repo: int, by_client: int) -> None:
    cfg = config(request)
    for count, limit, whose in ((by_repo, cfg.max_open_uploads_per_repository, f"repository {name}"),
                                (by_client, cfg.max_open_uploads_per_client, "this client")):
        if limit and count >= limit:
            raise TooManyRequests(
                detail={"open_uploads": count, "limit": limit},
                message=f"{whose} has {count} open upload sessions (the limit is {limit}): finish or cancel "
                        f"some (DELETE their Location), or push in one request (POST ?digest=)")


def _inline(request: web.Request) -> bool:
    """Run the staging area's small steps inside the index's thread calls: a local driver
    (filesystem) and an index whose queries run in threads (SQLite). On PostgreSQL the query
    functions run on the event loop (``run_sync``), where a mkdir or a stat must not."""
    return uploads(request).local and index(request).db.dialect == "sqlite"


async def _session(request: web.Request, name: str,
                   bytes_of: Digest | None = None) -> tuple[str, int, int | None, bool]:
    """The (id, staged size, mark, has a staging area) of the session in the URL, or
    BLOB_UPLOAD_UNKNOWN. With ``bytes_of`` on a local driver, an empty session also gets
    ``before_bytes`` of that digest in the same thread call (mark; else None)."""
    upload_id = _upload_id(request)
    sessions = uploads(request)
    mark = None
    if _inline(request):
        # The row and the staged size (a stat) in one thread call; see Index.upload_session.
        row, found, mark = await index(request).upload_session(
            upload_id, name, sessions.size_now, str(bytes_of) if bytes_of is not None else None)
    else:
        # The row (index) and the staged size (storage) are independent: ask both at once.
        row, found = await asyncio.gather(index(request).get_upload(upload_id), sessions.size(upload_id))
    size = _check_session(upload_id, name, row, found)
    return upload_id, size, mark, found is not None


async def _stage(request: web.Request, upload_id: str) -> None:
    """Make the staging area of a session that has none yet, before bytes are appended to it
    (or an empty one is finished); its row says so in the same index write (``stage_upload``)."""
    sessions = uploads(request)
    if _inline(request):
        staged = await index(request).stage_upload(upload_id, lambda: sessions.create_now(upload_id))
    else:
        # The area first: a crash before the row says so leaves an area read as the session's
        # size, never a row that counts on an area that is not there.
        await sessions.create(upload_id)
        staged = await index(request).stage_upload(upload_id)
    if not staged:
        await sessions.cancel(upload_id)
        raise BlobUploadUnknown(detail={"uuid": upload_id})


def _upload_id(request: web.Request) -> str:
    upload_id = request.match_info["uuid"]
    if not UPLOAD_ID_RE.match(upload_id):
        raise BlobUploadUnknown(detail={"uuid": upload_id[:100]})
    return upload_id


def _check_session(upload_id: str, name: str, row, found: int | None) -> int:
    """The session's size (``found``: its staging area's, None without one), or
    BLOB_UPLOAD_UNKNOWN unless the session is ``name``'s and its staging area is there or was
    never made."""
    size = row.staged_size(found) if row is not None and row.repository == name else None
    if size is None:
        raise BlobUploadUnknown(detail={"uuid": upload_id})
    return size


async def _finish(request: web.Request, name: str, upload_id: str, digest: Digest) -> web.Response:
    """Verify, commit the bytes (fsync + rename), then link the blob: bytes first, names second."""
    await enforce_quota(request, name, str(digest), lambda: uploads(request).size(upload_id))
    mark = await index(request).before_bytes(str(digest))  # see registry/lifecycle/reviews.py
    try:
        size = await uploads(request).finish(upload_id, digest)
    except DigestMismatch as e:
        raise DigestInvalid(detail={"digest": str(digest)}, message=str(e)) from None
    except UploadNotFound:
        raise BlobUploadUnknown(detail={"uuid": upload_id}) from None
    await _name_blob(request, index(request).complete_upload(upload_id, name, str(digest), size, mark=mark), digest)
    return _blob_created(name, digest)


def _fits_single_put(request: web.Request) -> bool:
    """A whole small blob in this request's body, on a store where one put beats a session."""
    length = request.content_length
    limit = min(uploads(request).single_put_limit, config(request).max_manifest_size)
    return length is not None and 0 < length <= limit


async def _single_put(request: web.Request, name: str, digest: Digest, upload_id: str | None = None,
                      mark: int | None = None, staged: bool = True) -> web.Response:
    """Read the (small) body, write it verified with one put, link it; close the session if any.
    ``mark``: ``before_bytes(digest)``'s, when the caller already queued the review.
    ``staged``: the session has a staging area to remove."""
    data = await request.read()
    if len(data) != request.content_length:
        raise SizeInvalid(detail={"Content-Length": request.content_length})
    await enforce_quota(request, name, str(digest), len(data))
    if mark is None:
        mark = await index(request).before_bytes(str(digest))  # see registry/lifecycle/reviews.py
    sessions = uploads(request)
    # On a local driver the verified put runs in the thread that then queues the naming write
    # (``before=``): bytes still before names, one event-loop wake-up less.
    put_now = sessions.put_whole_now(digest, data)
    try:
        if put_now is None:
            await sessions.put_whole(digest, data)
        if upload_id is None:
            await _name_blob(request, index(request).link_blob(name, str(digest), len(data), mark=mark,
                                                               before=put_now), digest)
        elif _inline(request):
            # The (empty: we checked) staging area, if any, goes in the writer thread once the
            # row's deletion is committed: no thread hop of its own.
            discard = (lambda: sessions.discard_now(upload_id)) if staged else None
            await _name_blob(request, index(request).complete_upload(
                upload_id, name, str(digest), len(data), mark=mark, after=discard, before=put_now), digest)
            sessions.forget(upload_id)
        else:
            await _name_blob(request, index(request).complete_upload(upload_id, name, str(digest), len(data),
                                                                     mark=mark, before=put_now), digest)
            await sessions.cancel(upload_id, empty=True)   # it held nothing: we checked
    except DigestMismatch as e:
        raise DigestInvalid(detail={"digest": str(digest)}, message=str(e)) from None
    return _blob_created(name, digest)


async def _name_blob(request: web.Request, naming, digest: Digest):
    """Run the index write that names just-written bytes; a concurrent sweep may have taken them."""
    try:
        return await naming
    except BytesSwept:
        await blob_refused(index(request), str(digest))
        raise Unavailable(message="the blob was garbage-collected while this upload stored it; upload it again",
                          headers={"Retry-After": "1"}) from None


def _digest_or_none(text: str | None) -> Digest | None:
    try:
        return Digest.parse(text) if text else None
    except InvalidDigest:
        return None


def _check_length(request: web.Request, expected: int | None = None) -> None:
    declared = request.headers.get("Content-Length")
    if declared is not None and (not declared.isdigit() or (expected is not None and int(declared) != expected)):
        raise SizeInvalid(detail={"Content-Length": declared[:50]})


async def start_upload(request: web.Request) -> web.Response:
    name = repo_name(request)
    q = request.query
    if "mount" in q:
        mounted = await _try_mount(request, name, parse_digest(q["mount"]), q.get("from", ""))
        if mounted is not None:
            return mounted
    digest = parse_digest(q["digest"]) if "digest" in q else None
    _check_length(request)
    if digest is not None and _fits_single_put(request):
        return await _single_put(request, name, digest)
    if digest is not None:
        # Monolithic upload: the whole blob is this request's body. The session is private to
        # this request (no index row; a crash leaves an orphan staging area for the expiry).
        await enforce_quota(request, name, str(digest), request.content_length)
        upload_id = await uploads(request).start()
        async with uploads(request).lock(upload_id):
            try:
                await uploads(request).append(upload_id, request.content.iter_chunked(READ_CHUNK), start_size=0)
                return await _finish(request, name, upload_id, digest)
            except BaseException:
                await uploads(request).cancel(upload_id)
                raise
    upload_id = await _new_session(request, name)
    return web.Response(status=202, headers=_session_headers(name, upload_id, 0))


async def _try_mount(request: web.Request, name: str, digest: Digest, source: str) -> web.Response | None:
    """Link a blob readable in ``source`` into ``name``; None means: fall back to an upload (also
    when the caller may not pull ``source``: the spec's fallback, and nothing is confirmed)."""
    try:
        validate_name(source)
    except InvalidReference:
        return None
    visible = may_pull(request)
    if visible is not None and not visible(source):
        return None
    size = await index(request).blob_size(source, str(digest))
    if size is None or await storage(request).stat(digest) is None:
        return None
    try:
        await storage(request).touch(digest)  # keep GC's grace period on it while we link
    except BlobNotFound:
        return None
    await enforce_quota(request, name, str(digest), size)
    if not await index(request).mount_blob(name, str(digest), size):
        return None  # being garbage-collected: the client uploads it instead
    return _blob_created(name, digest)


async def patch_upload(request: web.Request) -> web.Response:
    name = repo_name(request)
    upload_id, _, _, staged = await _session(request, name)
    async with uploads(request).lock(upload_id):
        size = await uploads(request).size(upload_id)
        if size is None and not staged:
            await _stage(request, upload_id)  # the session's first bytes (or another request's)
            size = 0
        if size is None:
            raise BlobUploadUnknown(detail={"uuid": upload_id})
        content_range = request.headers.get("Content-Range")
        if content_range:
            m = CONTENT_RANGE_RE.match(content_range.strip())
            if not m:
                raise BlobUploadInvalid(detail={"Content-Range": content_range[:100]})
            start, end = int(m.group(1)), int(m.group(2))
            if start != size or end < start:
                # Out of order: tell the client where the session really is.
                raise RangeInvalid(
                    detail={"Content-Range": content_range[:100], "size": size},
                    headers=_session_headers(name, upload_id, size),
                )
            _check_length(request, end - start + 1)
        else:
            _check_length(request)
        # No index write per chunk: the staging file's mtime tells the expiry it is in use.
        try:
            size = await uploads(request).append(upload_id, request.content.iter_chunked(READ_CHUNK), start_size=size)
        except UploadNotFound:
            raise BlobUploadUnknown(detail={"uuid": upload_id}) from None
    return web.Response(status=202, headers=_session_headers(name, upload_id, size))


async def put_upload(request: web.Request) -> web.Response:
    name = repo_name(request)
    single = _fits_single_put(request)
    # A whole small body for an (empty) session: its bytes' GC review is queued in the thread
    # call that reads the session (see _session); an invalid digest is reported after the
    # session is known, as before.
    early = _digest_or_none(request.query.get("digest")) if single else None
    if early is not None and _inline(request) and await _quota_free(request, name):
        upload_id = _upload_id(request)
        async with uploads(request).lock(upload_id):
            named, body = await _put_into_empty_session(request, name, upload_id, early)
            if named is None:
                return _blob_created(name, early)
            row, found, mark = named
            size = _check_session(upload_id, name, row, found)
            return await _put_rest(request, name, upload_id, size, single, mark, found is not None, body)
    upload_id, size, mark, staged = await _session(request, name, early)
    async with uploads(request).lock(upload_id):
        return await _put_rest(request, name, upload_id, size, single, mark, staged)


async def _quota_free(request: web.Request, name: str) -> bool:
    """No quota applies to ``name``'s namespace (``enforce_quota`` would return at once)."""
    quotas = request.app.get(QUOTAS)
    return quotas is None or await quotas.limit(namespace_of(name)) is None


async def _put_into_empty_session(request: web.Request, name: str, upload_id: str, digest: Digest):
    """The body, then one index call (``Index.put_into_empty_session``): the session's row and
    staged size with the bytes' GC review, and when it is empty, the verified put and the
    naming chained after it without the event loop. (None, body) when named; else
    ((row, size, mark), body): the body is read already."""
    data = await request.read()
    if len(data) != request.content_length:
        raise SizeInvalid(detail={"Content-Length": request.content_length})
    sessions = uploads(request)
    put_now = sessions.put_whole_now(digest, data)
    assert put_now is not None  # _inline: a local driver
    try:
        named = await _name_blob(request, index(request).put_into_empty_session(
            upload_id, name, sessions.size_now, str(digest), len(data), put_now,
            after=lambda: sessions.discard_now(upload_id)), digest)
    except DigestMismatch as e:
        raise DigestInvalid(detail={"digest": str(digest)}, message=str(e)) from None
    if named is None:
        sessions.forget(upload_id)
    return named, data


async def _put_rest(request: web.Request, name: str, upload_id: str, size: int, single: bool,
                    mark: int | None, staged: bool, body: bytes | None = None) -> web.Response:
    """PUT of a known session, under its lock: digest, then the body (if any) and the commit.
    ``staged``: the session has a staging area. ``body``: the request's body when it was read
    already (else it is streamed)."""
    if "digest" not in request.query:
        raise DigestInvalid(message="the digest query parameter is required to finish an upload")
    digest = parse_digest(request.query["digest"])
    if size == 0 and single:
        return await _single_put(request, name, digest, upload_id, mark, staged)   # POST + PUT with the body
    if not staged:
        await _stage(request, upload_id)  # a streamed body, or an empty session finished as it is
    if request.body_exists:
        content_range = request.headers.get("Content-Range")
        if content_range:
            m = CONTENT_RANGE_RE.match(content_range.strip())
            if not m or int(m.group(1)) != size:
                raise RangeInvalid(headers=_session_headers(name, upload_id, size))
        chunks = _one_chunk(body) if body is not None else request.content.iter_chunked(READ_CHUNK)
        await uploads(request).append(upload_id, chunks)
    return await _finish(request, name, upload_id, digest)


async def _one_chunk(data: bytes):
    yield data


async def get_upload(request: web.Request) -> web.Response:
    name = repo_name(request)
    upload_id, size, _, _ = await _session(request, name)
    return web.Response(status=204, headers=_session_headers(name, upload_id, size))


async def delete_upload(request: web.Request) -> web.Response:
    name = repo_name(request)
    upload_id, _, _, _ = await _session(request, name)
    async with uploads(request).lock(upload_id):
        await index(request).delete_upload(upload_id)
        await uploads(request).cancel(upload_id)
    return web.Response(status=204, headers={})

"""Blob GET/HEAD (with Range, via sendfile) and DELETE."""
from __future__ import annotations

from aiohttp import web

from oci.digest import Digest
from registry.storage.driver import StorageUnavailable

from .common import config, index, parse_digest, repo_name, storage
from .errors import BlobUnknown, RangeInvalid, Unsupported

OCTET = "application/octet-stream"


async def _locate(request: web.Request) -> tuple[str, Digest, int]:
    name = repo_name(request)
    digest = parse_digest(request.match_info["digest"])
    size = await index(request).blob_size(name, str(digest))
    # Also ask storage: a name must never lead to missing bytes, even after a bad restore.
    if size is None or await storage(request).stat(digest) is None:
        raise BlobUnknown(detail={"digest": str(digest)})
    return name, digest, size


async def get_blob(request: web.Request) -> web.StreamResponse:
    _, digest, size = await _locate(request)
    headers = {"Docker-Content-Digest": str(digest), "Content-Type": OCTET}
    redirect = getattr(storage(request), "redirect_url", None)
    if redirect is not None and request.method == "GET":
        url = await redirect(digest)  # S3 with redirect: true -> a presigned URL
        if url:
            return web.Response(status=307, headers={"Location": url, "Docker-Content-Digest": str(digest)})
    path = storage(request).local_path(digest)
    if path is not None:
        # aiohttp's FileResponse does Range (206/416), HEAD and sendfile for us.
        return web.FileResponse(path, headers=headers)
    return await _stream_blob(request, digest, size, headers)


def parse_range(header: str, size: int) -> tuple[int, int]:
    """One `bytes=a-b` range as (offset, length); RangeInvalid when it cannot be served."""
    unit, _, spec = header.partition("=")
    start_s, sep, end_s = spec.strip().partition("-")
    if unit.strip() != "bytes" or not sep or "," in spec:
        raise RangeInvalid(headers={"Content-Range": f"bytes */{size}"})
    try:
        if start_s == "":
            length = min(int(end_s), size)
            return size - length, length
        start = int(start_s)
        end = min(int(end_s), size - 1) if end_s else size - 1
    except ValueError:
        raise RangeInvalid(headers={"Content-Range": f"bytes */{size}"}) from None
    if start >= size or end < start:
        raise RangeInvalid(headers={"Content-Range": f"bytes */{size}"})
    return start, end - start + 1


async def _stream_blob(request: web.Request, digest: Digest, size: int, headers: dict[str, str]) -> web.StreamResponse:
    """For drivers without local files: stream from the driver, honouring one Range."""
    offset, length, status = 0, size, 200
    if request.headers.get("Range"):
        offset, length = parse_range(request.headers["Range"], size)
        status = 206
        headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{size}"
    resp = web.StreamResponse(status=status, headers={**headers, "Accept-Ranges": "bytes"})
    resp.content_length = length
    await resp.prepare(request)
    if request.method != "HEAD":
        # S3 on plain http: the kernel moves the bytes (registry/storage/s3_splice.py); the driver
        # says how many went that way (all, none, or up to a stalled client) and the rest stream.
        direct = getattr(storage(request), "send_direct", None)
        try:
            sent = await direct(request, resp, digest, offset, length) if direct is not None else 0
            if length > sent or not sent:
                async for block in storage(request).read(digest, offset + sent, length - sent):
                    await resp.write(block)
        except StorageUnavailable:
            # The 200 is out: ending the connection is the only way left to say the body is cut
            # (an envelope now would leave the client waiting for the bytes it was promised).
            if request.transport is not None:
                request.transport.abort()
            raise
    await resp.write_eof()
    return resp


async def delete_blob(request: web.Request) -> web.Response:
    name = repo_name(request)
    digest = parse_digest(request.match_info["digest"])
    if not config(request).delete_enabled:
        raise Unsupported(message="deletes are disabled on this registry")
    if not await index(request).unlink_blob(name, str(digest)):
        raise BlobUnknown(detail={"digest": str(digest)})
    # The bytes stay until the garbage collector finds nothing else refers to them.
    return web.Response(status=202, headers={"Docker-Content-Digest": str(digest)})

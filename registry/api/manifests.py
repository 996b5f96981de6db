"""Manifests by tag or digest: GET/HEAD with Accept negotiation, PUT with checks, DELETE.

PUT stores the exact bytes received as a blob (the digest is of those bytes, never of a
re-serialisation), then records the manifest, its references, subject and tag in one index
transaction. Parsing is per media type in oci.manifest; schema1 is refused there.
"""
from __future__ import annotations

import asyncio
import json
from typing import Awaitable, TypeVar

from aiohttp import web

from oci import mediatypes as mt
from oci.digest import Digest, InvalidDigest
from oci.manifest import ImageIndex, ImageManifest, ManifestError, parse_manifest, validate_image_config
from oci.reference import is_tag

from ..index import ManifestRecord
from ..lifecycle import QUOTAS, enforce_quota
from ..lifecycle.quotas import namespace_of
from ..lifecycle.hooks import BytesSwept, ReferencesGone, blob_refused, store_and_name
from ..storage.driver import BlobNotFound
from .common import config, index, manifest_cache, manifest_location, parse_digest, repo_name, storage
from .errors import (
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    TagInvalid,
    Unsupported,
)
from .references import check_references, check_urls, image_blobs, image_references

MAX_CONFIG_CHECKED = 4 << 20  # the catalog shows configs up to this size (registry/web/images.py)
# Config digests that passed validate_image_config: a validity that cannot change (the digest
# fixes the bytes), so pushes of more manifests of one image (tags, annotations, rebuilt
# indexes) skip re-reading and re-parsing the config. Oldest first, bounded.
VALID_CONFIGS_KEPT = 4096
STORE_ATTEMPTS = 5  # store_and_name's default: writes of the bytes when sweeps keep taking them
_VALID_CONFIGS: dict[str, None] = {}
T = TypeVar("T")


def _reference(request: web.Request, for_write: bool = False) -> tuple[Digest | None, str | None]:
    """(digest, None) or (None, tag) from the URL's reference."""
    ref = request.match_info["reference"]
    if ":" in ref:
        return parse_digest(ref), None
    if not is_tag(ref):
        if for_write:
            raise TagInvalid(detail={"tag": ref[:200]}, message=f"invalid tag {ref[:200]!r}")
        raise ManifestUnknown(detail={"reference": ref[:200]})
    return None, ref


async def _load_bytes(request: web.Request, digest: str) -> bytes:
    cache = manifest_cache(request)
    data = cache.get(digest)
    if data is None:
        try:
            data = await storage(request).get(Digest.parse(digest))
        except BlobNotFound:
            raise ManifestUnknown(detail={"digest": digest}) from None
        cache.put(digest, data)
    return data


def _accepted(request: web.Request) -> set[str]:
    out: set[str] = set()
    for header in request.headers.getall("Accept", []):
        for part in header.split(","):
            media = part.split(";")[0].strip().lower()
            if media:
                out.add(media)
    return out


def _accepts(accepted: set[str], media_type: str) -> bool:
    if not accepted or media_type in accepted or "*/*" in accepted:
        return True
    return f"{media_type.split('/')[0]}/*" in accepted


async def _platform_child(request: web.Request, name: str, raw: bytes) -> tuple[str, str, int] | None:
    """For a client that cannot read indexes: the linux/amd64 entry, as distribution does."""
    try:
        idx = parse_manifest(raw)
    except ManifestError:
        return None
    if not isinstance(idx, ImageIndex):
        return None
    for desc in idx.manifests:
        p = desc.platform
        if p and p.os == "linux" and p.architecture == "amd64":
            row = await index(request).get_manifest(name, str(desc.digest))
            if row:
                return row.digest, row.media_type, row.size
    return None


async def get_manifest(request: web.Request) -> web.Response:
    name = repo_name(request)
    digest, tag = _reference(request)
    if digest is not None:
        row = await index(request).get_manifest(name, str(digest))
        found = (row.digest, row.media_type, row.size) if row else None
    else:
        found = await index(request).resolve_tag(name, tag or "")
    if found is None:
        raise ManifestUnknown(detail={"reference": request.match_info["reference"]})
    found_digest, media_type, size = found
    raw = await _load_bytes(request, found_digest)
    accepted = _accepted(request)
    if not _accepts(accepted, media_type) and media_type in mt.INDEXES and accepted & mt.IMAGE_MANIFESTS:
        child = await _platform_child(request, name, raw) if tag is not None else None
        if child is None:
            raise ManifestUnknown(
                detail={"reference": request.match_info["reference"], "mediaType": media_type},
                message="the manifest is an index, and the Accept header does not allow indexes",
            )
        found_digest, media_type, size = child
        raw = await _load_bytes(request, found_digest)
    headers = {"Docker-Content-Digest": found_digest, "ETag": f'"{found_digest}"'}
    return web.Response(body=raw, content_type=media_type, headers=headers)


async def _read_capped(request: web.Request, limit: int) -> bytes:
    declared = request.content_length
    if declared is not None and declared > limit:
        raise ManifestInvalid(message=f"manifest is larger than the limit of {limit} bytes", status=413)
    chunks, total = [], 0
    async for chunk in request.content.iter_chunked(64 << 10):
        total += len(chunk)
        if total > limit:
            raise ManifestInvalid(message=f"manifest is larger than the limit of {limit} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


async def _check_config(request: web.Request, manifest: ImageManifest | ImageIndex) -> None:
    """An image config's fields must have image-spec's JSON types: what the catalog (and every
    client) reads from it later must not trip over a `variant` of 7 (#13.3). The config is
    linked in this repository by now (check_references)."""
    if not isinstance(manifest, ImageManifest) or manifest.config.media_type not in mt.CONFIGS:
        return
    digest = manifest.config.digest
    if str(digest) in _VALID_CONFIGS:
        return  # the same bytes (content addressed) passed before
    size = await storage(request).stat(digest)
    if size is None or size > MAX_CONFIG_CHECKED:
        return  # too large to be a config people read; the catalog says so instead of parsing it
    try:
        validate_image_config(await storage(request).get(digest))
    except ManifestError as e:
        raise ManifestInvalid(detail={"reason": str(e)[:500], "field": e.field, "digest": str(digest)},
                              message=f"manifest invalid: {e}"[:600]) from None
    except BlobNotFound:
        raise ManifestBlobUnknown(detail={"digest": str(digest)}) from None
    _VALID_CONFIGS[str(digest)] = None
    while len(_VALID_CONFIGS) > VALID_CONFIGS_KEPT:
        _VALID_CONFIGS.pop(next(iter(_VALID_CONFIGS)))


async def put_manifest(request: web.Request) -> web.Response:
    name = repo_name(request)
    ref_digest, tag = _reference(request, for_write=True)
    raw = await _read_capped(request, config(request).max_manifest_size)
    algorithm = ref_digest.algorithm if ref_digest else "sha256"
    digest = Digest.of(raw, algorithm)
    if ref_digest is not None and digest != ref_digest:
        raise DigestInvalid(
            detail={"digest": str(ref_digest)},
            message=f"manifest digest {digest} does not match the reference {ref_digest}",
        )
    try:
        manifest = parse_manifest(raw, request.headers.get("Content-Type"), max_size=config(request).max_manifest_size)
    except ManifestError as e:
        raise ManifestInvalid(detail={"reason": str(e)[:500], "field": e.field}, message=f"manifest invalid: {e}"[:600]) from None
    except InvalidDigest as e:
        raise ManifestInvalid(detail={"reason": str(e)[:500]}, message=f"manifest invalid: {e}"[:600]) from None
    except RecursionError:  # hostile nesting depth
        raise ManifestInvalid(message="manifest invalid: JSON nested too deeply") from None
    artifact_type = manifest.effective_artifact_type
    if artifact_type is not None and (len(artifact_type) > 255 or "\x00" in artifact_type):
        raise ManifestInvalid(message="manifest invalid: artifactType (or config mediaType) is not a valid media type")
    refs = None
    if await _chainable(request, name, manifest):
        # Nothing for the event loop to do between the reference check and the naming: one
        # index call does both, with the put chained between them (Index.check_and_put_manifest).
        assert isinstance(manifest, ImageManifest)
        check_urls(manifest)
        blobs = image_blobs(manifest)
        record = _record(request, manifest, digest, raw, artifact_type, tag, blobs, ())
        put_now = storage(request).put_now  # type: ignore[attr-defined]
        missing = await _first_then_store_and_name(request, name, digest, raw, record, index(request)
                                                   .check_and_put_manifest(name, record, lambda: put_now(digest, raw)))
        if missing is None:
            manifest_cache(request).put(str(digest), raw)
            return _created(request, name, digest, manifest, record)
        refs = image_references(manifest, blobs, missing)  # refused below, or the empty config stored
    if refs is None:
        refs = await check_references(index(request), name, manifest, bytes_of=str(digest))
    refs.raise_if_missing(name)
    if refs.needs_empty_config:
        # The empty config `{}` is well known; store it for clients that never upload it.
        idx = index(request)
        await store_and_name(
            idx, storage(request), Digest.parse(mt.EMPTY_JSON_DIGEST), mt.EMPTY_JSON,
            lambda mark: idx.link_blob(name, mt.EMPTY_JSON_DIGEST, len(mt.EMPTY_JSON), mark=mark))
    await _check_config(request, manifest)
    manifest_cache(request).put(str(digest), raw)
    record = _record(request, manifest, digest, raw, artifact_type, tag, refs.blobs, refs.children)
    await enforce_quota(request, name, str(digest), len(raw))
    # Bytes first, names second (and again if a sweep took them meanwhile).
    await _store_and_name(request, name, digest, raw, record, refs.mark)
    return _created(request, name, digest, manifest, record)


async def _chainable(request: web.Request, name: str, manifest: ImageManifest | ImageIndex) -> bool:
    """Whether the PUT may go as one index call: an image manifest on a driver with a blocking
    ``put_now`` whose steps between the check and the naming would do nothing (its config known
    valid or not checked, valid ``?tag=``s, no quota on the namespace), so that the answer to
    every request is what the steps one at a time give, errors and their precedence included."""
    if not isinstance(manifest, ImageManifest) or getattr(storage(request), "put_now", None) is None:
        return False
    if manifest.config.media_type in mt.CONFIGS and str(manifest.config.digest) not in _VALID_CONFIGS:
        return False  # _check_config reads and parses it first (once per config)
    if not all(is_tag(extra) for extra in request.query.getall("tag", [])):
        return False  # refused by _tags, after the references' check
    quotas = request.app.get(QUOTAS)
    return quotas is None or await quotas.limit(namespace_of(name)) is None


def _record(request: web.Request, manifest: ImageManifest | ImageIndex, digest: Digest, raw: bytes,
            artifact_type: str | None, tag: str | None, blobs: tuple[str, ...],
            children: tuple[str, ...]) -> ManifestRecord:
    annotations = manifest.annotations if isinstance(manifest.annotations, dict) else None
    return ManifestRecord(
        digest=str(digest),
        media_type=manifest.media_type,
        size=len(raw),
        artifact_type=artifact_type,
        subject=str(manifest.subject.digest) if manifest.subject else None,
        annotations=json.loads(json.dumps(annotations)) if annotations else None,
        blobs=blobs,
        children=children,
        tags=_tags(request, tag),
    )


def _created(request: web.Request, name: str, digest: Digest, manifest: ImageManifest | ImageIndex,
             record: ManifestRecord) -> web.Response:
    headers = {"Location": manifest_location(name, digest), "Docker-Content-Digest": str(digest)}
    if manifest.subject:
        headers["OCI-Subject"] = str(manifest.subject.digest)
    response = web.Response(status=201, headers=headers)
    for applied in record.tags if request.query.getall("tag", []) else ():
        response.headers.add("OCI-Tag", applied)  # distribution-spec: the tags the push applied
    return response


async def _store_and_name(request: web.Request, name: str, digest: Digest, raw: bytes, record: ManifestRecord,
                          mark: int | None) -> None:
    """``store_and_name`` of the manifest's bytes and its record. On a driver with a blocking
    ``put_now`` (the filesystem), the first attempt chains the put before the record's write
    (``put_manifest(before=)``: the put's thread queues the write itself, one event-loop wake-up
    less)."""
    idx, store = index(request), storage(request)
    put_now = getattr(store, "put_now", None)
    if put_now is not None and mark is not None:
        await _first_then_store_and_name(request, name, digest, raw, record,
                                         idx.put_manifest(name, record, mark=mark, before=lambda: put_now(digest, raw)))
        return
    try:
        await store_and_name(idx, store, digest, raw, lambda m: idx.put_manifest(name, record, mark=m), mark=mark,
                             attempts=STORE_ATTEMPTS)
    except ReferencesGone as e:
        raise _references_gone(e) from None


async def _first_then_store_and_name(request: web.Request, name: str, digest: Digest, raw: bytes,
                                     record: ManifestRecord, first: Awaitable[T]) -> T | None:
    """``first``: store_and_name's first attempt as one chained index call (the put before the
    naming write). A sweep that took the bytes meanwhile (BytesSwept) sends the rest of the
    attempts through ``store_and_name``, as they always went (then None: recorded); references
    found gone are refused as store_and_name refuses them."""
    idx, store = index(request), storage(request)
    try:
        try:
            return await first
        except BytesSwept:
            await asyncio.sleep(0.05)  # store_and_name's pause after a first attempt
        except ReferencesGone:
            await blob_refused(idx, str(digest))  # written but not named: reviewed as usual
            raise
        await store_and_name(idx, store, digest, raw, lambda m: idx.put_manifest(name, record, mark=m),
                             attempts=STORE_ATTEMPTS - 1)
        return None
    except ReferencesGone as e:
        raise _references_gone(e) from None


def _references_gone(e: ReferencesGone) -> ManifestBlobUnknown:
    first = sorted(e.missing)[0]
    return ManifestBlobUnknown(
        detail={"digest": first, "missing": sorted(e.missing)[:20]},
        message=f"manifest references {len(e.missing)} blob(s) or manifest(s) being garbage-collected, e.g. {first}",
    )


def _tags(request: web.Request, url_tag: str | None) -> tuple[str, ...]:
    """The URL's tag and any ``?tag=`` parameters (distribution-spec's push with tags)."""
    tags = [url_tag] if url_tag else []
    for extra in request.query.getall("tag", []):
        if not is_tag(extra):
            raise TagInvalid(detail={"tag": extra[:200]}, message=f"invalid tag {extra[:200]!r}")
        if extra not in tags:
            tags.append(extra)
    return tuple(tags)


async def delete_manifest(request: web.Request) -> web.Response:
    name = repo_name(request)
    digest, tag = _reference(request)
    if not config(request).delete_enabled:
        raise Unsupported(message="deletes are disabled on this registry")
    if digest is not None:
        deleted = await index(request).delete_manifest(name, str(digest))
    else:
        deleted = await index(request).delete_tag(name, tag or "")
    if not deleted:
        raise ManifestUnknown(detail={"reference": request.match_info["reference"]})
    return web.Response(status=202, headers={})

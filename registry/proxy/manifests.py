"""Manifests through the cache: make the one asked for present locally, then serve it as usual.

- By digest: present -> served; absent -> fetched once (a digest never changes, so a cached one is
  never asked for again).
- By tag: a tag confirmed less than ``tag_ttl`` ago is served; an older one is re-checked with a
  HEAD (digest only); if the upstream's digest moved, the new manifest is fetched.
- The upstream down, slow, 5xx or 429: a cached tag is served with a ``Warning`` header; a tag
  never cached fails with UNAVAILABLE and a retryable status.
Only the manifest asked for is fetched: an index's children come when a client asks for them
(plus, for a client that cannot read indexes, the linux/amd64 child it will be given).
"""
from __future__ import annotations

import time

from oci import mediatypes as mt
from oci.digest import Digest, InvalidDigest, is_digest
from oci.manifest import ImageIndex, ManifestError, parse_manifest

from ..api.errors import ManifestInvalid, ManifestUnknown
from .cache import InvalidUpstreamManifest
from .errors import stale_warning, unavailable
from .routing import Target
from .upstream import UpstreamNotFound, UpstreamUnavailable


async def ensure_manifest(svc, target: Target, reference: str, accepts_index: bool) -> str | None:
    """Make ``reference`` servable from ``target.local``. Returns a Warning header value when
    what will be served may be stale (the upstream could not confirm it)."""
    if is_digest(reference):
        if not await svc.cache.has_manifest(target.local, reference):
            try:
                await _fetch_shared(svc, target, reference, None)
            except UpstreamUnavailable as e:
                raise unavailable(e) from None
        return None
    warning = await _ensure_tag(svc, target, reference)
    if not accepts_index:
        try:
            await _ensure_default_child(svc, target, reference)
        except UpstreamUnavailable as e:
            raise unavailable(e) from None
    return warning


async def _ensure_tag(svc, target: Target, tag: str) -> str | None:
    cache, up = svc.cache, target.upstream
    if svc.recently_checked(target.local, tag):
        return None  # confirmed by this process less than tag_ttl ago: no lookup at all
    cached = await cache.tag_digest(target.local, tag)
    if cached is not None:
        checked = await cache.queries.tag_checked_at(target.local, tag)
        if checked is not None and time.time() - checked < up.tag_ttl:
            svc.note_checked(target.local, tag, checked)
            return None
        try:
            answer = await svc.flights.run(("head", target.local, tag),
                                           lambda: target.client.manifest(target.remote, tag, "HEAD"))
        except UpstreamUnavailable as e:
            return stale_warning(e)
        except UpstreamNotFound:
            raise ManifestUnknown(detail={"tag": tag}, message=f"tag {tag!r} is gone from upstream {up.name}") from None
        if answer.digest == cached:
            await cache.queries.set_tag_checked(target.local, tag)
            svc.note_checked(target.local, tag)
            return None
    try:
        await _fetch_shared(svc, target, tag, tag)
    except UpstreamUnavailable as e:
        if cached is not None:
            return stale_warning(e)
        raise unavailable(e) from None
    svc.note_checked(target.local, tag)
    return None


async def _fetch_shared(svc, target: Target, reference: str, tag: str | None) -> None:
    await svc.flights.run(("manifest", target.local, reference), lambda: _fetch(svc, target, reference, tag))


async def _fetch(svc, target: Target, reference: str, tag: str | None) -> None:
    try:
        answer = await target.client.manifest(target.remote, reference)
    except UpstreamNotFound:
        raise ManifestUnknown(detail={"reference": reference},
                              message=f"manifest {reference} not found at upstream {target.upstream.name}") from None
    algorithm = reference.split(":")[0] if tag is None else "sha256"
    if tag is not None and answer.digest and ":" in answer.digest:
        algorithm = answer.digest.split(":")[0]
    try:
        digest = Digest.of(answer.body, algorithm)
    except (InvalidDigest, ValueError):
        raise ManifestInvalid(message=f"upstream {target.upstream.name} sent a digest of unknown algorithm") from None
    expected = reference if tag is None else answer.digest
    if expected and str(digest) != expected:
        raise ManifestInvalid(detail={"expected": expected, "received": str(digest)},
                              message=f"upstream {target.upstream.name} sent a manifest whose digest does not match")
    try:
        await svc.cache.store_manifest(target.local, target.upstream.name, target.remote, answer.body,
                                       answer.media_type, digest, tag)
    except InvalidUpstreamManifest as e:
        raise ManifestInvalid(message=f"upstream {target.upstream.name} sent an invalid manifest: {e}") from None


async def _ensure_default_child(svc, target: Target, tag: str) -> None:
    """A client that cannot read indexes is given the linux/amd64 image (as distribution does):
    fetch that one child, so the ordinary handler finds it."""
    found = await svc.cache.index.resolve_tag(target.local, tag)
    if found is None or found[1] not in mt.INDEXES:
        return
    raw = await svc.cache.manifest_bytes(found[0])
    try:
        idx = parse_manifest(raw or b"")
    except ManifestError:
        return
    if not isinstance(idx, ImageIndex):
        return
    for desc in idx.manifests:
        p = desc.platform
        if p and p.os == "linux" and p.architecture == "amd64":
            if not await svc.cache.has_manifest(target.local, str(desc.digest)):
                await _fetch_shared(svc, target, str(desc.digest), None)
            return

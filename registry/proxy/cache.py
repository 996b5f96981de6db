"""The cache's one adapter onto the registry's index and storage (so a reshaped seam costs one edit).

Cached content is ordinary content: manifests are stored as blobs and recorded with
``Index.put_manifest`` (references, tags), blobs are committed through the storage driver's
upload staging and linked with ``Index.link_blob``. Only the facts of the cache itself (origin,
tag check times, last pull) go to the proxy tables. Bytes first, names second, as for a push.
"""
from __future__ import annotations

import json
import time

from aiohttp import web

from oci.digest import Digest
from oci.manifest import ImageIndex, ManifestError, parse_manifest

from .. import state
from ..index import ManifestRecord
from ..index.proxy_queries import ProxyQueries
from ..lifecycle.hooks import ReferencesGone, store_and_name
from ..storage.driver import BlobNotFound

# A pull refreshes last_pulled_at at most this often per repository (a write per pull is wasteful).
PULL_TOUCH_INTERVAL = 60.0
AWAITING_MAX = 100_000  # noted late references kept in memory
PARENT_SCAN_MAX = 1000  # manifests of one repository read to find who names a late arrival


class InvalidUpstreamManifest(Exception):
    pass


class CacheStore:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.queries = ProxyQueries(app[state.INDEX].db)
        self._touched: dict[str, float] = {}
        # (repository, digest) -> manifests stored before it that name it (see ``_awaited``)
        self._awaiting: dict[tuple[str, str], set[str]] = {}

    @property
    def index(self):
        return self.app[state.INDEX]

    @property
    def storage(self):
        return self.app[state.STORAGE]

    # -- lookups ------------------------------------------------------------------------------
    async def repository_exists(self, name: str) -> bool:
        return await self.index.repository_exists(name)

    async def tag_digest(self, local: str, tag: str) -> str | None:
        found = await self.index.resolve_tag(local, tag)
        return found[0] if found else None

    async def has_manifest(self, local: str, digest: str) -> bool:
        return await self.index.get_manifest(local, digest) is not None

    async def manifest_bytes(self, digest: str) -> bytes | None:
        try:
            return await self.storage.get(Digest.parse(digest))
        except BlobNotFound:
            return None

    async def has_blob(self, local: str, digest: str) -> bool:
        size = await self.index.blob_size(local, digest)
        return size is not None and await self.storage.stat(Digest.parse(digest)) is not None

    async def stored_size(self, digest: str) -> int | None:
        """Bytes of a blob some other repository already brought in (then only a link is needed)."""
        return await self.storage.stat(Digest.parse(digest))

    # -- writes -------------------------------------------------------------------------------
    async def store_manifest(self, local: str, upstream: str, remote: str, raw: bytes, media_type: str,
                             digest: Digest, tag: str | None) -> str:
        """Store manifest bytes received from the upstream under ``local``; returns the media type."""
        try:
            manifest = parse_manifest(raw, media_type or None, max_size=self.app[state.CONFIG].max_manifest_size)
        except (ManifestError, ValueError, RecursionError) as e:
            raise InvalidUpstreamManifest(str(e)) from None
        from . import PROXY
        from .quota import make_room

        await make_room(self.app[PROXY], local, str(digest), len(raw))
        self.app[state.MANIFEST_CACHE].put(str(digest), raw)
        for attempt in (1, 2):
            record = await self._record(local, manifest, digest, len(raw), tag)
            try:
                # Bytes first, names second, and again if a sweep took the bytes meanwhile.
                await store_and_name(self.index, self.storage, digest, raw,
                                     lambda mark: self.index.put_manifest(local, record, mark=mark))
                break
            except ReferencesGone:
                if attempt == 2:  # condemned by GC between our look and the write, twice
                    raise
        await self.queries.mark_cached(local, upstream, remote)
        self._awaited(local, str(digest), record, manifest)
        await self._adopt(local, str(digest), "manifest")
        if tag:
            await self.queries.set_tag_checked(local, tag)
        return manifest.media_type

    # -- references that arrive late -----------------------------------------------------------
    # Only what a client asks for is fetched, so an index is stored before the children a client
    # asks for next, and a manifest before its blobs; the references recorded with it are those
    # already present (the index's rule, and lifecycle's). When the rest arrives, it is recorded
    # as referenced by the manifests that name it, or lifecycle (``untagged_after``, the blob
    # review) would take a platform manifest or a layer of a cached image for unreferenced.

    def _awaited(self, local: str, digest: str, record: ManifestRecord, manifest) -> None:
        """Note what ``digest`` names that is not here yet (kept in memory; after a restart the
        manifests of the repository are read instead, see ``_parents``)."""
        if isinstance(manifest, ImageIndex):
            names, kind, present = [str(d.digest) for d in manifest.manifests], "manifest", set(record.children)
        else:
            names, kind, present = [str(d.digest) for d in manifest.references() if not d.urls], "blob", set(record.blobs)
        if len(self._awaiting) > AWAITING_MAX:
            self._awaiting.clear()  # a bound, not an LRU: ``_parents`` falls back to reading
        for name in names:
            if name not in present:
                self._awaiting.setdefault((local, name), set()).add(digest)

    async def _adopt(self, local: str, digest: str, kind: str) -> None:
        parents = self._awaiting.pop((local, digest), None)
        if parents is None:
            parents = await self._parents(local, digest)
        if parents:
            await self.queries.add_references(local, sorted(parents), digest, kind)

    async def _parents(self, local: str, digest: str) -> set[str]:
        """Manifests of ``local`` whose bytes name ``digest`` (after a restart lost the notes)."""
        found = set()
        for parent, media_type in (await self.queries.manifests_of(local))[:PARENT_SCAN_MAX]:
            if parent == digest:
                continue
            raw = self.app[state.MANIFEST_CACHE].get(parent) or await self.manifest_bytes(parent)
            try:
                m = parse_manifest(raw or b"", media_type or None)
            except (ManifestError, ValueError, RecursionError):
                continue
            named = m.manifests if isinstance(m, ImageIndex) else m.references()
            if any(str(d.digest) == digest for d in named):
                found.add(parent)
        return found

    async def before_bytes(self, digest: str) -> int:
        """The GC's sweep mark, read before a blob's bytes are written (registry/lifecycle)."""
        return await self.index.before_bytes(digest)

    async def link_blob(self, local: str, upstream: str, remote: str, digest: str, size: int,
                        mark: int | None = None) -> None:
        await self.index.link_blob(local, digest, size, mark=mark)
        await self.queries.mark_cached(local, upstream, remote)
        await self._adopt(local, digest, "blob")

    async def mount_blob(self, local: str, upstream: str, remote: str, digest: str, size: int) -> bool:
        """Name bytes already stored (another cached repository brought them); False when they
        are gone or being collected (then they are fetched again)."""
        if not await self.index.mount_blob(local, digest, size):
            return False
        await self.queries.mark_cached(local, upstream, remote)
        await self._adopt(local, digest, "blob")
        return True

    async def _record(self, local: str, manifest, digest: Digest, size: int, tag: str | None) -> ManifestRecord:
        # Only what a client asks for is fetched, so an index arrives before its children and a
        # manifest before its blobs: the references recorded are those already here (the
        # index's rule, and lifecycle's, is that a recorded reference names something present).
        if isinstance(manifest, ImageIndex):
            blobs: tuple[str, ...] = ()
            wanted = [str(d.digest) for d in manifest.manifests]
            missing = await self.index.missing_manifests(local, wanted)
            children = tuple(d for d in wanted if d not in missing)
        else:
            wanted = [str(d.digest) for d in manifest.references() if not d.urls]
            missing = await self.index.missing_blobs(local, wanted)
            blobs = tuple(d for d in wanted if d not in missing)
            children = ()
        annotations = manifest.annotations if isinstance(manifest.annotations, dict) else None
        return ManifestRecord(
            digest=str(digest), media_type=manifest.media_type, size=size,
            artifact_type=manifest.effective_artifact_type,
            subject=str(manifest.subject.digest) if manifest.subject else None,
            annotations=json.loads(json.dumps(annotations)) if annotations else None,
            blobs=blobs, children=children, tags=(tag,) if tag else (),
        )

    async def pulled(self, local: str) -> None:
        """Note a pull (least-recently-pulled eviction), at most once a minute per repository."""
        t = time.time()
        if t - self._touched.get(local, 0.0) < PULL_TOUCH_INTERVAL:
            return
        self._touched[local] = t
        await self.queries.touch_pulled(local, t)

"""What is inside an image, read from the stored manifest and config bytes.

Content is immutable under its digest, so what we parse is cached by (repository, digest) (an LRU
of small summaries, never the layers). A config is read only when the repository links it
(``linked``, the index's blob links): never by digest alone, so a manifest cannot show another
repository's config (#13.2). Bytes missing from storage, configs too large to be configs, or
documents that do not parse give a summary with ``problem`` set: the page says so instead of
failing, because the index and the pages must stay usable whatever a client pushed.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from oci import mediatypes as mt
from oci.digest import Digest, InvalidDigest
from oci.manifest import ImageConfig, ImageIndex, ManifestError, parse_manifest

from ..storage.driver import StorageDriver, StorageError

MAX_CONFIG = 4 * 1024 * 1024
CACHE_ENTRIES = 4096
PROBLEM_TTL = 10.0  # seconds a summary with a problem (bytes missing...) is served before a re-read
Linked = Callable[[str, str], Awaitable[bool]]  # (repository, blob digest) -> the repository links it


@dataclass
class Layer:
    digest: str
    media_type: str
    size: int
    created_by: str = ""  # the history line that made it, when the config says


@dataclass
class Child:
    """An index entry: one platform's manifest (or an attached artifact)."""

    digest: str
    media_type: str
    size: int
    platform: str
    artifact_type: str | None = None


@dataclass
class ImageSummary:
    digest: str
    media_type: str
    kind: str  # "image", "index" or "artifact"
    artifact_type: str | None = None
    subject: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    layers: list[Layer] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)
    config_digest: str | None = None
    config_media_type: str | None = None
    platform: str = ""
    created: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None

    @property
    def compressed_size(self) -> int:
        return sum(l.size for l in self.layers)

    @property
    def platforms(self) -> list[str]:
        if self.kind == "index":
            return [c.platform for c in self.children if c.platform]
        return [self.platform] if self.platform else []


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


def _attach_history(layers: list[Layer], history: list[Any]) -> None:
    """Pair layers with the history entries that created them (empty_layer ones make none)."""
    lines = [h for h in history if isinstance(h, dict) and not h.get("empty_layer")]
    for layer, h in zip(layers, lines):
        layer.created_by = str(h.get("created_by") or h.get("comment") or "")  # str(): user input


class ImageReader:
    def __init__(self, storage: StorageDriver, linked: Linked) -> None:
        self.storage, self.linked = storage, linked
        self._cache: OrderedDict[tuple[str, str], ImageSummary] = OrderedDict()
        self._missing: dict[tuple[str, str], tuple[float, ImageSummary]] = {}

    async def _bytes(self, digest: str, limit: int) -> bytes:
        d = Digest.parse(digest)
        size = await self.storage.stat(d)
        if size is None:
            raise StorageError("not in storage")
        if size > limit:
            raise StorageError(f"{size} bytes is too large to show")
        return await self.storage.get(d)

    async def summary(self, repository: str, digest: str, media_type: str | None = None) -> ImageSummary:
        """The summary of a manifest the caller found in ``repository``'s index rows."""
        key = (repository, digest)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        missed = self._missing.get(key)
        if missed is not None and time.monotonic() - missed[0] < PROBLEM_TTL:
            return missed[1]
        s = await self._read(repository, digest, media_type)
        if s.problem is None:  # parsed content never changes
            self._cache[key] = s
            if len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
            self._missing.pop(key, None)
        else:  # missing bytes may arrive later: ask storage again after a while, not every page
            self._missing[key] = (time.monotonic(), s)
            if len(self._missing) > CACHE_ENTRIES:
                self._missing.pop(next(iter(self._missing)))
        return s

    async def summaries(self, repository: str, items: list[tuple[str, str | None]]) -> dict[str, ImageSummary]:
        results = await asyncio.gather(*(self.summary(repository, d, m) for d, m in items))
        return {s.digest: s for s in results}

    async def raw(self, digest: str, limit: int = MAX_CONFIG) -> bytes:
        return await self._bytes(digest, limit)

    async def _read(self, repository: str, digest: str, media_type: str | None) -> ImageSummary:
        out = ImageSummary(digest, media_type or "", "image")
        try:
            man = parse_manifest(await self._bytes(digest, MAX_CONFIG), media_type)
        except (StorageError, InvalidDigest) as e:
            out.problem = f"manifest bytes unavailable: {e}"
            return out
        except ManifestError as e:
            out.problem = f"manifest does not parse: {e}"
            return out
        out.media_type = man.media_type
        out.annotations = _strings(man.annotations)
        out.subject = str(man.subject.digest) if man.subject else None
        out.artifact_type = man.artifact_type
        if isinstance(man, ImageIndex):
            out.kind = "index"
            out.children = [Child(str(c.digest), c.media_type, c.size, str(c.platform) if c.platform else "",
                                  c.artifact_type) for c in man.manifests]
            return out
        out.layers = [Layer(str(l.digest), l.media_type, l.size) for l in man.layers]
        out.config_digest, out.config_media_type = str(man.config.digest), man.config.media_type
        if man.artifact_type or man.config.media_type not in mt.CONFIGS:
            out.kind = "artifact"
            out.artifact_type = man.artifact_type or man.config.media_type
            return out
        if not await self.linked(repository, out.config_digest):
            out.problem = "config unavailable: not linked in this repository"
            return out
        try:
            cfg = ImageConfig.parse(await self._bytes(out.config_digest, MAX_CONFIG))
        except (StorageError, InvalidDigest) as e:
            out.problem = f"config unavailable: {e}"
            return out
        except ManifestError as e:
            out.problem = f"config does not parse: {e}"
            return out
        out.platform = str(cfg.platform) if cfg.os or cfg.architecture else ""
        out.created = cfg.created if isinstance(cfg.created, str) else None
        out.config = cfg.config
        out.history = [h for h in cfg.history if isinstance(h, dict)] if isinstance(cfg.history, list) else []
        _attach_history(out.layers, out.history)
        return out

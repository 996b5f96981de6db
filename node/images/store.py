"""The node's image store: image records naming blobs and snapshots (see content.py for bytes).

Records live in ``<root>/images/images.json`` ({"images": {config-digest: record}}), rewritten
atomically under the flock ``<root>/images/images.lock``. A record::

    {"id": "sha256:<config>", "manifest": "sha256:...", "manifest_media_type": "...",
     "layers": [{"digest", "size", "media_type", "diff_id"}], "repo_tags": ["busybox:latest"],
     "repo_digests": ["busybox@sha256:..."], "size": <uncompressed bytes>, "created": "...",
     "platform": "linux/amd64", "pulled": <unix time>}

Tags and digests are kept in docker's familiar form and compared after normalisation, so
"busybox", "busybox:latest" and "docker.io/library/busybox:latest" name the same image.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

from oci.digest import Digest, InvalidDigest
from oci.manifest import ImageConfig, chain_ids
from oci.record import record
from oci.reference import InvalidReference, Reference

from .content import ContentStore
from .errors import ImageError, ImageNotFound
from .fsutil import atomic_write, locked
from .records import read_records

# Annotations only (postponed): importing typing would cost `dockyard run` ~2.5 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Image", "ImageStore", "ImageNotFound", "normalise"]

_HEX_RE = re.compile(r"^(?:sha256:)?([0-9a-f]{1,64})$")


def normalise(ref: str) -> str:
    """The canonical text of a tag or digest reference, for comparisons."""
    return str(Reference.parse(ref))


@record  # not dataclasses: importing it costs `dockyard run` ~10 ms (see oci/record.py)
class Image:
    id: str
    config: ImageConfig
    repo_tags: list[str]
    repo_digests: list[str]
    size: int
    created: str | None
    manifest_digest: str
    manifest_media_type: str
    layers: list[dict[str, Any]]
    platform: str = ""
    _snapshots: Path = Path(".")

    # written out: a generated one costs an exec at every `dockyard run` (oci/record.py checks
    # that these parameters and defaults are the fields')
    def __init__(self, id, config, repo_tags, repo_digests, size, created, manifest_digest,
                 manifest_media_type, layers, platform="", _snapshots=Path(".")):
        self.id = id
        self.config = config
        self.repo_tags = repo_tags
        self.repo_digests = repo_digests
        self.size = size
        self.created = created
        self.manifest_digest = manifest_digest
        self.manifest_media_type = manifest_media_type
        self.layers = layers
        self.platform = platform
        self._snapshots = _snapshots

    @property
    def chain_ids(self) -> list[Digest]:
        return chain_ids(self.config.diff_ids)

    def layer_dirs(self) -> list[Path]:
        """Snapshot dirs, lowest layer first, each usable as an overlayfs lowerdir. A snapshot
        that a reboot left unsettled (content.py: its files may be empty after a crash) is
        unpacked again from its blob first."""
        from .content import snapshot_meta
        chains = self.chain_ids
        dirs = [self._snapshots / c.hex / "fs" for c in chains]
        for i, d in enumerate(dirs):
            if snapshot_meta(d.parent) is None:
                self._unpack_again(i, chains[i])
        return dirs

    def _unpack_again(self, i: int, chain: Digest) -> None:
        from .errors import ImageError
        try:
            layer = self.layers[i]
            blob, diff_id = Digest.parse(layer["digest"]), Digest.parse(layer["diff_id"])
        except (IndexError, KeyError, InvalidDigest):
            raise ImageError(f"image {self.short_id}: layer {i + 1} has no snapshot and its record "
                             "does not name its blob; pull the image again") from None
        content = ContentStore(self._snapshots.parent)
        if not content.has_blob(blob):
            raise ImageError(f"image {self.short_id}: the snapshot of layer {blob} is missing and so "
                             "is its blob; pull the image again")
        content.unpack(blob, diff_id, chain)

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]


class ImageStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.dir = self.root / "images"
        self.content = ContentStore(self.dir)
        self.records_path = self.dir / "images.json"
        self.lock_path = self.dir / "images.lock"

    # -- records --------------------------------------------------------------------------

    def _load(self) -> dict[str, dict[str, Any]]:
        return read_records(self.root)  # records.py: the listing commands read it without the store

    def _save(self, records: dict[str, dict[str, Any]]) -> None:
        atomic_write(self.records_path, json.dumps({"images": records}, indent=1).encode())

    def _image(self, rec: dict[str, Any]) -> Image:
        config = ImageConfig.parse(self.content.read_blob(Digest.parse(rec["id"])))
        return Image(id=rec["id"], config=config, repo_tags=list(rec.get("repo_tags", [])),
                     repo_digests=list(rec.get("repo_digests", [])), size=int(rec.get("size", 0)),
                     created=rec.get("created"), manifest_digest=rec["manifest"],
                     manifest_media_type=rec["manifest_media_type"], layers=rec["layers"],
                     platform=rec.get("platform", ""), _snapshots=self.content.snapshots)

    def list(self) -> list[Image]:
        recs = sorted(self._load().values(), key=lambda r: r.get("created") or "", reverse=True)
        return [self._image(r) for r in recs]

    def add(self, *, manifest_digest: Digest, manifest_media_type: str, config_digest: Digest,
            layers: list[dict[str, Any]], repo_tag: str | None = None, repo_digest: str | None = None,
            index_digest: Digest | None = None) -> Image:
        """Record an image whose blobs and snapshots are in place. A tag moves to this image."""
        config = ImageConfig.parse(self.content.read_blob(config_digest))
        for c in chain_ids(config.diff_ids):
            if not self.content.has_snapshot(c):
                raise ImageError(f"snapshot {c} missing: the image is incomplete")
        size = sum(self.content.snapshot_size(c) for c in chain_ids(config.diff_ids))
        with locked(self.lock_path):
            records = self._load()
            if repo_tag:
                self._drop_tag(records, normalise(repo_tag))
            iid = str(config_digest)
            rec = records.get(iid) or {"id": iid, "repo_tags": [], "repo_digests": []}
            rec.update(manifest=str(manifest_digest), manifest_media_type=manifest_media_type, layers=layers,
                       size=size, created=config.created, platform=str(config.platform), pulled=time.time())
            if repo_tag and repo_tag not in rec["repo_tags"]:
                rec["repo_tags"].append(repo_tag)
            if repo_digest and repo_digest not in rec["repo_digests"]:
                rec["repo_digests"].append(repo_digest)
            if index_digest:  # the manifest list it came from: kept so `save`/GC know it
                rec.setdefault("index_manifests", [])
                if str(index_digest) not in rec["index_manifests"]:
                    rec["index_manifests"].append(str(index_digest))
            records[iid] = rec
            self._save(records)
            return self._image(rec)

    @staticmethod
    def _drop_tag(records: dict[str, dict[str, Any]], canonical: str) -> None:
        for rec in records.values():
            rec["repo_tags"] = [t for t in rec.get("repo_tags", []) if normalise(t) != canonical]

    # -- lookup ---------------------------------------------------------------------------

    def _find(self, records: dict[str, dict[str, Any]], ref: str) -> dict[str, Any]:
        ref = ref.strip()
        full = ref if ref.startswith("sha256:") else f"sha256:{ref}"
        if full in records:
            return records[full]
        if len(full) == 71:  # a bare manifest digest
            for rec in records.values():
                if rec.get("manifest") == full or full in rec.get("index_manifests", []):
                    return rec
        try:
            parsed = Reference.parse(ref)
        except InvalidReference:
            parsed = None
        if parsed is not None:
            if parsed.digest is not None:
                want = f"{parsed.name}@{parsed.digest}"
                for rec in records.values():
                    if any(normalise(d) == want for d in rec.get("repo_digests", [])):
                        return rec
            else:
                canonical = str(parsed)
                for rec in records.values():
                    if any(normalise(t) == canonical for t in rec.get("repo_tags", [])):
                        return rec
        m = _HEX_RE.match(ref)
        if m:
            hits = [r for iid, r in records.items() if iid.split(":", 1)[1].startswith(m.group(1))]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise ImageError(f"image ID {ref!r} is ambiguous: it matches {len(hits)} images")
        raise ImageNotFound(f"No such image: {ref}")

    def get(self, ref_or_id: str) -> Image:
        """By "name:tag", familiar name, full or short ID (with or without sha256:) or name@digest."""
        return self._image(self._find(self._load(), ref_or_id))

    def exists(self, ref_or_id: str) -> bool:
        try:
            self._find(self._load(), ref_or_id)
        except ImageNotFound:
            return False
        return True

    # -- tag / remove ---------------------------------------------------------------------

    def tag(self, source: str, target: str) -> Image:
        ref = Reference.parse(target)
        if ref.digest is not None:
            raise ImageError(f"refusing to create a tag with a digest reference: {target}")
        with locked(self.lock_path):
            records = self._load()
            rec = self._find(records, source)
            self._drop_tag(records, str(ref))
            rec["repo_tags"].append(ref.familiar())
            self._save(records)
            return self._image(rec)

    def remove(self, ref: str, force: bool = False, in_use: set[str] | None = None) -> list[str]:
        """docker rmi: untag when the image has other tags and ``ref`` is a tag; else delete the
        image and whatever blobs and snapshots no other image needs. Returns docker's lines."""
        in_use = in_use or set()
        with locked(self.lock_path):
            records = self._load()
            rec = self._find(records, ref)
            iid = rec["id"]
            lines: list[str] = []
            by_tag = _is_tag_ref(ref, rec)
            if by_tag and len(rec["repo_tags"]) > 1:
                canonical = normalise(ref)
                gone = [t for t in rec["repo_tags"] if normalise(t) == canonical]
                rec["repo_tags"] = [t for t in rec["repo_tags"] if normalise(t) != canonical]
                self._save(records)
                return [f"Untagged: {t}" for t in gone]
            if not by_tag and len(rec["repo_tags"]) > 1 and not force:
                raise ImageError(f"conflict: unable to delete {rec['id'][7:19]} (must be forced) - image is "
                                 "referenced in multiple repositories")
            if iid in in_use:
                if not force:
                    raise ImageError(f"conflict: unable to remove image {ref} - image {iid[7:19]} is being used "
                                     "by a container (stop and remove it, or use -f)")
                # Forced while in use: untag and keep the bytes, as docker does; containers run on.
                lines += [f"Untagged: {t}" for t in rec["repo_tags"]]
                rec["repo_tags"] = []
                self._save(records)
                return lines
            lines += [f"Untagged: {t}" for t in rec["repo_tags"]]
            lines += [f"Untagged: {d}" for d in rec["repo_digests"]]
            del records[iid]
            self._save(records)
            lines.append(f"Deleted: {iid}")
        self.collect()
        return lines

    def writing(self):
        """Held (shared) by pulls and loads from their first blob to their record: the sweep in
        ``collect`` waits for them, so it never deletes bytes a record is about to name.
        Lock order everywhere: this one, then images.lock."""
        return locked(self.dir / "gc.lock", shared=True)

    def collect(self) -> None:
        """Delete blobs and snapshots that no record names."""
        self.content.settle()
        with locked(self.dir / "gc.lock"), locked(self.lock_path):
            self._sweep(self._load())

    def _sweep(self, records: dict[str, dict[str, Any]]) -> None:
        keep_blobs: set[str] = set()
        keep_snaps: set[str] = set()
        for rec in records.values():
            keep_blobs |= {rec["id"], rec["manifest"], *(l["digest"] for l in rec["layers"])}
            keep_blobs |= set(rec.get("index_manifests", []))
            try:
                keep_snaps |= {c.hex for c in chain_ids([Digest.parse(l["diff_id"]) for l in rec["layers"]])}
            except (InvalidDigest, KeyError):
                pass
        for blobs, snaps in _pins(self.dir / "pins"):  # e.g. the build cache (node/build/cache.py)
            keep_blobs |= blobs
            keep_snaps |= snaps
        for snap in self.content.list_snapshots():
            if snap.hex not in keep_snaps:
                self.content.remove_snapshot(snap)
        self.content.remove_stale_temps()
        for blob in self.content.list_blobs():
            if str(blob) not in keep_blobs:
                self.content.remove_blob(blob)

    # -- inspect --------------------------------------------------------------------------

    def inspect(self, ref: str) -> dict[str, Any]:
        """`docker image inspect`'s shape, for the parts the node knows."""
        image = self.get(ref)
        doc = json.loads(image.config.raw)
        return {
            "Id": image.id, "RepoTags": image.repo_tags, "RepoDigests": image.repo_digests,
            "Parent": "", "Comment": doc.get("comment", ""), "Created": image.created or "",
            "Config": doc.get("config") or {}, "Architecture": image.config.architecture,
            "Variant": image.config.variant or None, "Os": image.config.os, "Size": image.size,
            "Author": doc.get("author", ""),
            "RootFS": {"Type": "layers", "Layers": [str(d) for d in image.config.diff_ids]},
            "Metadata": {"LastTagTime": ""},
            "Descriptor": {"mediaType": image.manifest_media_type, "digest": image.manifest_digest},
            "GraphDriver": {"Name": "overlay", "Data": {"LowerDirs": [str(p) for p in image.layer_dirs()]}},
        }


def _pins(pins_dir: Path) -> list[tuple[set[str], set[str]]]:
    """Blobs and snapshots other parts of the node keep without an image record: each
    ``images/pins/*.json`` is {"blobs": [digest...], "snapshots": [chain-id hex...]}."""
    out = []
    for path in sorted(pins_dir.glob("*.json")) if pins_dir.is_dir() else []:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        out.append((set(doc.get("blobs", [])), set(doc.get("snapshots", []))))
    return out


def _is_tag_ref(ref: str, rec: dict[str, Any]) -> bool:
    """Whether the user named the image by one of its tags (rather than by ID or digest)."""
    try:
        parsed = Reference.parse(ref)
    except InvalidReference:
        return False
    if parsed.digest is not None:
        return False
    canonical = str(parsed)
    return any(normalise(t) == canonical for t in rec.get("repo_tags", []))

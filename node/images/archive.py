"""`dockyard save` / `dockyard load`: image archives other tools read and write.

``save`` writes one tar that is both an OCI image layout (``oci-layout``, ``index.json``,
``blobs/sha256/*`` — what ``skopeo ... oci-archive:`` reads) and a docker-archive
(``manifest.json`` naming the same blob files — what ``docker load`` reads), as Docker 25+
itself writes. Blobs are the stored bytes, so manifest digests survive a save/load round trip.

``load`` reads either form (the OCI index wins when both are present). The archive is hostile
input: members are only ever looked up by name and streamed into the content store, where
every blob is verified against its digest; nothing is extracted by its own path.
"""
from __future__ import annotations

import contextlib
import json
import os
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import IO

from oci import mediatypes as mt
from oci.digest import Digest, Hasher, InvalidDigest
from oci.manifest import ImageConfig, ImageIndex, ManifestError, chain_ids, parse_manifest
from oci.reference import InvalidReference, Reference

from .errors import ImageError
from .pull import choose, default_platform
from .store import Image, ImageStore

REF_NAME = "org.opencontainers.image.ref.name"
IMAGE_NAME = "io.containerd.image.name"


def _blob_name(digest: str) -> str:
    return "blobs/" + digest.replace(":", "/")


def save(root: Path, refs: list[str], out_path: Path) -> None:
    store = ImageStore(root)
    images: list[tuple[str, Image]] = [(r, store.get(r)) for r in refs]
    index, docker, written = [], {}, set()
    out_path = Path(out_path)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.")
    os.close(fd)
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
            for ref, image in images:
                digests = [image.manifest_digest, image.id, *(l["digest"] for l in image.layers)]
                for d in digests:
                    if d not in written:
                        tar.add(store.content.blob_path(Digest.parse(d)), _blob_name(d), recursive=False,
                                filter=_plain)
                        written.add(d)
                tags = _tags_for(ref, image)
                raw_size = store.content.blob_path(Digest.parse(image.manifest_digest)).stat().st_size
                desc = {"mediaType": image.manifest_media_type, "digest": image.manifest_digest, "size": raw_size}
                for tag in tags or [None]:
                    entry = dict(desc)
                    if tag:
                        r = Reference.parse(tag)
                        entry["annotations"] = {IMAGE_NAME: str(r), REF_NAME: r.tag or "latest"}
                    if entry not in index:
                        index.append(entry)
                d = docker.setdefault(image.id, {"Config": _blob_name(image.id), "RepoTags": [],
                                                 "Layers": [_blob_name(l["digest"]) for l in image.layers]})
                d["RepoTags"] += [t for t in tags if t not in d["RepoTags"]]
            _add_bytes(tar, "index.json", json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                                                       "manifests": index}).encode())
            _add_bytes(tar, "manifest.json", json.dumps(list(docker.values())).encode())
        os.replace(tmp, out_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _tags_for(ref: str, image: Image) -> list[str]:
    """docker save semantics: a tag names itself; an ID saves every tag of the image."""
    try:
        r = Reference.parse(ref)
        if r.digest is None and any(str(Reference.parse(t)) == str(r) for t in image.repo_tags):
            return [r.familiar()]
    except InvalidReference:
        pass
    return list(image.repo_tags)


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o644
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    tar.addfile(info, BytesIO(data))


# -- load --------------------------------------------------------------------------------

class _Archive:
    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}

    def open(self, name: str) -> IO[bytes]:
        m = self.members.get(name.removeprefix("./"))
        if m is None:
            raise ImageError(f"invalid archive: {name!r} is missing")
        f = self.tar.extractfile(m)
        assert f is not None
        return f

    def read_small(self, name: str, limit: int = 8 << 20) -> bytes:
        data = self.open(name).read(limit + 1)
        if len(data) > limit:
            raise ImageError(f"invalid archive: {name!r} is too large")
        return data


def _import_blob(store: ImageStore, src: IO[bytes], digest: Digest | None) -> Digest:
    """Stream into the content store; verified against ``digest`` when the archive names one."""
    store.content.ingest.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=store.content.ingest, prefix="load-")
    h = Hasher(digest.algorithm if digest else "sha256")
    try:
        with os.fdopen(fd, "wb") as f:
            while chunk := src.read(1 << 20):
                h.update(chunk)
                f.write(chunk)
        actual = h.digest()
        if digest is not None and store.content.has_blob(digest):
            os.unlink(tmp)
            if actual != digest:
                raise ImageError(f"invalid archive: blob {digest} has digest {actual}")
            return digest
        store.content.commit_file(digest or actual, Path(tmp))
        return digest or actual
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def load(root: Path, path: Path) -> list[str]:
    """Import every image of the archive; returns docker's "Loaded image..." lines."""
    store = ImageStore(root)
    try:
        with store.writing(), tarfile.open(path, "r:*") as tar:
            archive = _Archive(tar)
            if "index.json" in archive.members:
                return _load_oci(store, archive)
            if "manifest.json" in archive.members:
                return _load_docker(store, archive)
    except (tarfile.TarError, EOFError) as e:
        raise ImageError(f"invalid archive {path}: {e}") from None
    except (ManifestError, InvalidDigest, InvalidReference, ValueError, KeyError, TypeError) as e:
        raise ImageError(f"invalid archive {path}: {e}") from None
    raise ImageError(f"invalid archive {path}: neither index.json (OCI layout) nor manifest.json (docker)")


def _store_layers(store: ImageStore, archive: _Archive, config: ImageConfig, layers: list[tuple[str, Digest | None]]):
    """Import and unpack layers; ``layers`` pairs member names with expected digests."""
    if len(layers) != len(config.diff_ids):
        raise ImageError(f"invalid archive: {len(layers)} layers but {len(config.diff_ids)} diff_ids")
    out = []
    for (name, digest), diff_id, chain in zip(layers, config.diff_ids, chain_ids(config.diff_ids)):
        d = _import_blob(store, archive.open(name), digest)
        store.content.unpack(d, diff_id, chain)
        out.append((d, store.content.blob_path(d).stat().st_size))
    return out


def _load_oci(store: ImageStore, archive: _Archive) -> list[str]:
    index = parse_manifest(archive.read_small("index.json"), mt.OCI_INDEX)
    assert isinstance(index, ImageIndex)
    lines = []
    for desc in index.manifests:
        raw = archive.read_small(_blob_name(str(desc.digest)))
        if not desc.digest.matches(raw):
            raise ImageError(f"invalid archive: manifest {desc.digest} does not match its bytes")
        manifest = parse_manifest(raw, desc.media_type)
        store.content.write_blob(raw)
        top, digest = desc.digest, desc.digest
        if isinstance(manifest, ImageIndex):
            child = choose(manifest, default_platform())
            raw = archive.read_small(_blob_name(str(child.digest)))
            if not child.digest.matches(raw):
                raise ImageError(f"invalid archive: manifest {child.digest} does not match its bytes")
            manifest, digest = parse_manifest(raw, child.media_type), child.digest
            store.content.write_blob(raw)
        cfg_digest = _import_blob(store, archive.open(_blob_name(str(manifest.config.digest))), manifest.config.digest)
        config = ImageConfig.parse(store.content.read_blob(cfg_digest))
        stored = _store_layers(store, archive, config, [(_blob_name(str(l.digest)), l.digest) for l in manifest.layers])
        layers = [{"digest": str(l.digest), "size": size, "media_type": l.media_type, "diff_id": str(diff)}
                  for l, (_, size), diff in zip(manifest.layers, stored, config.diff_ids)]
        name = _image_name(desc.annotations or {})
        image = store.add(manifest_digest=digest, manifest_media_type=manifest.media_type, config_digest=cfg_digest,
                          layers=layers, repo_tag=name, index_digest=top if top != digest else None)
        lines.append(f"Loaded image: {name}" if name else f"Loaded image ID: {image.id}")
    return lines


def _image_name(annotations: dict[str, str]) -> str | None:
    for key in (IMAGE_NAME, REF_NAME):
        value = annotations.get(key)
        if value and ("/" in value or ":" in value):  # a bare tag names no repository
            with contextlib.suppress(InvalidReference):
                return Reference.parse(value).familiar()
    return None


def _load_docker(store: ImageStore, archive: _Archive) -> list[str]:
    entries = json.loads(archive.read_small("manifest.json"))
    if not isinstance(entries, list):
        raise ImageError("invalid archive: manifest.json must be a list")
    lines = []
    for entry in entries:
        cfg_digest = _import_blob(store, archive.open(entry["Config"]), None)
        config = ImageConfig.parse(store.content.read_blob(cfg_digest))
        stored = _store_layers(store, archive, config, [(name, None) for name in entry.get("Layers") or []])
        layers = [{"digest": str(d), "size": size, "media_type": _layer_type(store, d), "diff_id": str(diff)}
                  for (d, size), diff in zip(stored, config.diff_ids)]
        manifest = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                    "config": {"mediaType": mt.OCI_CONFIG, "digest": str(cfg_digest), "size": len(config.raw)},
                    "layers": [{"mediaType": l["media_type"], "digest": l["digest"], "size": l["size"]} for l in layers]}
        manifest_digest = store.content.write_blob(json.dumps(manifest, separators=(",", ":")).encode())
        tags = [Reference.parse(t).familiar() for t in entry.get("RepoTags") or []]
        for tag in tags or [None]:
            image = store.add(manifest_digest=manifest_digest, manifest_media_type=mt.OCI_MANIFEST,
                              config_digest=cfg_digest, layers=layers, repo_tag=tag)
        lines += [f"Loaded image: {t}" for t in tags] or [f"Loaded image ID: {image.id}"]
    return lines


def _layer_type(store: ImageStore, digest: Digest) -> str:
    with open(store.content.blob_path(digest), "rb") as f:
        head = f.read(4)
    if head[:2] == b"\x1f\x8b":
        return mt.OCI_LAYER_GZIP
    if head == b"\x28\xb5\x2f\xfd":
        return mt.OCI_LAYER_ZSTD
    return mt.OCI_LAYER

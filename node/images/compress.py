"""Compress an image's plain-tar layers before a push, as `docker push` does.

Images loaded from `docker save` (or built from uncompressed archives) hold their layers as plain
tars; registries and clients expect compressed layers, and sending plain tars doubles the bytes.
Each plain layer is compressed once per algorithm and kept in the content store; a small map
``content/derived/<plain-hex>.<algorithm>`` names the compressed blob so the next push of any
image sharing that layer reuses it. Compression is deterministic (no time or name in the gzip
header), so compressing the same layer twice gives the same digest.

The image keeps its config (its ID): only the manifest changes, and it is written to the store
as a new blob that the caller records after the push.
"""
from __future__ import annotations

import contextlib
import gzip
import json
import os
import tempfile
from pathlib import Path

from oci import mediatypes as mt
from oci.digest import Digest, Hasher

from .content import ContentStore
from .store import Image

ALGORITHMS = ("gzip", "zstd")
_TYPES = {  # (manifest media type, algorithm) -> the compressed layer media type
    (mt.OCI_MANIFEST, "gzip"): mt.OCI_LAYER_GZIP, (mt.OCI_MANIFEST, "zstd"): mt.OCI_LAYER_ZSTD,
    (mt.DOCKER_MANIFEST, "gzip"): mt.DOCKER_LAYER_GZIP,
}


class _HashingWriter:
    def __init__(self, f) -> None:
        self.f, self.hasher = f, Hasher("sha256")

    def write(self, data) -> int:
        self.hasher.update(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def _compress(content: ContentStore, plain: Digest, algorithm: str) -> tuple[Digest, int]:
    derived = content.dir / "content" / "derived"
    marker = derived / f"{plain.hex}.{algorithm}"
    with contextlib.suppress(OSError, ValueError):
        known = Digest.parse(marker.read_text().strip())
        if content.has_blob(known):
            return known, content.blob_path(known).stat().st_size
    content.ingest.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=content.ingest, prefix="compress-")
    try:
        with os.fdopen(fd, "wb") as raw, open(content.blob_path(plain), "rb") as src:
            out = _HashingWriter(raw)
            if algorithm == "gzip":
                # mtime=0 and no file name: the same layer always compresses to the same bytes.
                with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=6, mtime=0) as z:
                    while chunk := src.read(1 << 20):
                        z.write(chunk)
            else:
                import zstandard
                with zstandard.ZstdCompressor(level=3).stream_writer(out, closefd=False) as z:
                    while chunk := src.read(1 << 20):
                        z.write(chunk)
        digest, size = out.hasher.digest(), out.hasher.size
        content.commit_file(digest, Path(tmp), size, hashed=(digest, size))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    derived.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{digest}\n")
    return digest, size


def needs_compression(image: Image) -> bool:
    return any(layer.get("media_type") in (mt.OCI_LAYER, "application/vnd.docker.image.rootfs.diff.tar")
               for layer in image.layers)


def compress_for_push(content: ContentStore, image: Image, algorithm: str = "gzip"
                      ) -> tuple[list[dict], bytes, str]:
    """(layer records, manifest bytes, manifest media type) with every plain layer compressed.
    Non-distributable layers are left as they are (they are never pushed as plain blobs)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown compression {algorithm!r} (expected gzip or zstd)")
    media_type = image.manifest_media_type
    doc = json.loads(content.read_blob(Digest.parse(image.manifest_digest)))
    if algorithm == "zstd" and media_type == mt.DOCKER_MANIFEST:
        # Docker's schema2 has no zstd layer type: zstd layers travel in an OCI manifest.
        media_type = mt.OCI_MANIFEST
        doc["mediaType"] = media_type
        doc["config"]["mediaType"] = mt.OCI_CONFIG
    layer_type = _TYPES[(media_type, algorithm)]
    layers = []
    for record, desc in zip(image.layers, doc["layers"]):
        record = dict(record)
        if record.get("media_type") in (mt.OCI_LAYER, "application/vnd.docker.image.rootfs.diff.tar"):
            digest, size = _compress(content, Digest.parse(record["digest"]), algorithm)
            record.update(digest=str(digest), size=size, media_type=layer_type)
            desc.update(mediaType=layer_type, digest=str(digest), size=size)
        layers.append(record)
    raw = json.dumps(doc, indent=3).encode()
    content.write_blob(raw)
    return layers, raw, media_type

"""`import`: a root filesystem tarball (`docker export`'s output, plain, gzip or zstd) as a
one-layer image, the way docker imports one: the tarball is the layer, the config holds only
what the ``-c`` instructions set, history one entry whose comment is the message (or
"Imported from -"). The tarball is hostile input: it is streamed into the content store (never
held in memory) and unpacked by the store's layer extractor, which keeps every entry inside the
snapshot and bounds the size.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

from oci.digest import Hasher

from .errors import ImageError
from .store import Image, ImageStore

PLAIN_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
_CHUNK = 1 << 20


def _ingest(store: ImageStore, src: BinaryIO):
    """(digest, size) of ``src`` written into the store as a blob."""
    store.content.ingest.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=store.content.ingest, prefix="import-")
    hasher = Hasher("sha256")
    try:
        with os.fdopen(fd, "wb") as f:
            while chunk := src.read(_CHUNK):
                hasher.update(chunk)
                f.write(chunk)
        digest, size = hasher.digest(), hasher.size
        if size == 0:
            raise ImageError("invalid tar stream: the input is empty")
        with store.content.blob_lock(digest):
            if store.content.has_blob(digest):
                os.unlink(tmp)
            else:
                store.content.commit_file(digest, Path(tmp), size, hashed=(digest, size))
        return digest, size
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _media_type(head: bytes) -> str:
    from oci import mediatypes as mt
    if head[:2] == b"\x1f\x8b":
        return mt.DOCKER_LAYER_GZIP
    if head == b"\x28\xb5\x2f\xfd":
        return mt.OCI_LAYER_ZSTD
    return PLAIN_DOCKER_LAYER


def _diff_id(store: ImageStore, digest):
    """The digest of the uncompressed tar (without extracting anything: that is unpack's job)."""
    from .errors import UnpackError
    from .unpack import DEFAULT_MAX_LAYER_SIZE, _CountingReader, _decompressor, _zstd_errors
    with open(store.content.blob_path(digest), "rb") as f:
        reader = _CountingReader(_decompressor(f), DEFAULT_MAX_LAYER_SIZE)
        try:
            reader.drain()
        except (OSError, EOFError, ValueError, _zstd_errors()) as e:
            raise UnpackError(f"invalid tar stream: {e}") from None
        return reader.hasher.digest()


def _host_platform() -> tuple[str, str, str | None]:
    """pull.default_platform's answer without importing the registry client (ssl, aiohttp:
    ~0.2 s of an import measured here)."""
    machine = os.uname().machine
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)
    return "linux", arch, "v8" if arch == "arm64" else "v7" if arch == "arm" else None


def import_rootfs(root, src: BinaryIO, repo_tag: str | None = None, changes: list[str] = (),
                  message: str = "", source: str = "-", platform: str | None = None) -> Image:
    from node.build.image import StageImage, iso_time, store_image
    from node.engine.commit import apply_changes, validate_tag
    store = ImageStore(root)
    os_name, arch, variant = _host_platform()
    if platform:
        parts = platform.split("/")
        if len(parts) < 2 or not all(parts):
            raise ImageError(f"invalid platform {platform!r}: expected OS/ARCH[/VARIANT]")
        os_name, arch, variant = parts[0], parts[1], (parts[2] if len(parts) > 2 else None)
    config = apply_changes({}, list(changes))
    repo_tag = validate_tag(repo_tag)
    with store.writing():
        digest, size = _ingest(store, src)
        with open(store.content.blob_path(digest), "rb") as f:
            media_type = _media_type(f.read(4))
        diff_id = digest if media_type == PLAIN_DOCKER_LAYER else _diff_id(store, digest)
        store.content.unpack(digest, diff_id, diff_id)  # one layer: its chain ID is its diff_id
        now = iso_time(time.time())
        image = StageImage(config=config, os=os_name, architecture=arch, variant=variant,
                           comment=message or None)
        image.history.append({"created": now, "comment": message or f"Imported from {source}"})
        image.add_layer({"digest": str(digest), "size": size, "media_type": media_type,
                         "diff_id": str(diff_id)}, Path("."))
        stored = store_image(store, image, now, [repo_tag] if repo_tag else [])
    from node.engine import events
    events.emit(root, "image", "import", stored.id, {"name": stored.id})
    return stored

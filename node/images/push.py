"""`dockyard push`: send a stored image's blobs and manifest to a registry, byte for byte.

The manifest is pushed as the exact bytes stored at pull/load time, so its digest is unchanged,
unless the image holds plain-tar layers (loaded from `docker save`): those are compressed first
(gzip, or zstd on request; node/images/compress.py) and a manifest naming the compressed blobs
is pushed and recorded, as docker does.
Per blob: HEAD first (already there: skip); else a cross-repository mount from another
repository of the same registry the image came from; else an upload (chunked PATCH above
client.CHUNK_SIZE). The manifest goes last, when everything it names is in place.
"""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TextIO

from oci.digest import Digest
from oci.reference import InvalidReference, Reference

from .client import RegistryClient
from .compress import compress_for_push, needs_compression
from .errors import ImageError, RegistryError
from .progress import for_terminal, line_writer
from .store import Image, ImageStore

PARALLEL = 3


def push_image(root: Path, ref: str, quiet: bool = False, out: TextIO | None = None,
               compression: str = "gzip") -> Digest:
    """Push the image tagged ``ref``; returns the manifest digest the registry now serves."""
    return asyncio.run(_push(ImageStore(root), ref, quiet, out or sys.stdout, compression))


def _mount_sources(image: Image, target: Reference) -> list[str]:
    """Repositories on the target's registry that already hold this image's blobs."""
    out = []
    for name in [*image.repo_digests, *image.repo_tags]:
        try:
            r = Reference.parse(name)
        except InvalidReference:
            continue
        if r.domain == target.domain and r.repository != target.repository and r.repository not in out:
            out.append(r.repository)
    return out


async def _push(store: ImageStore, ref: str, quiet: bool, out: TextIO, compression: str = "gzip") -> Digest:
    try:
        target = Reference.parse(ref)
    except InvalidReference as e:
        raise ImageError(str(e)) from None
    if target.digest is not None:
        raise ImageError("cannot push a digest reference: push a tag")
    image = store.get(ref)
    layers, media_type = image.layers, image.manifest_media_type
    if needs_compression(image):
        layers, raw, media_type = compress_for_push(store.content, image, compression)
    else:
        raw = store.content.read_blob(Digest.parse(image.manifest_digest))
    blobs = [(Digest.parse(l["digest"]), int(l["size"])) for l in layers]
    blobs.append((Digest.parse(image.id), len(image.config.raw)))
    say = line_writer(out, quiet)
    say(f"The push refers to repository [{target.name}]")
    sources = _mount_sources(image, target)
    progress = for_terminal(quiet, out)
    gate = asyncio.Semaphore(PARALLEL)
    repo = target.repository

    async with RegistryClient(target.domain) as client:
        async def send(digest: Digest, size: int) -> None:
            key = digest.short
            path = store.content.blob_path(digest)
            if not path.is_file():
                raise ImageError(f"blob {digest} of {ref} is missing from the local store")
            async with gate:
                if await client.blob_exists(repo, digest):
                    progress.add(key, size, "Layer already exists")
                    return
                progress.add(key, size, "Preparing")
                location = None
                for source in sources:
                    try:
                        location = await client.mount_blob(repo, digest, source)
                    except RegistryError:
                        continue
                    if location is None:
                        progress.finish(key, f"Mounted from {source}")
                        return
                    break
                await client.upload_blob(repo, digest, path, location,
                                         lambda done: progress.update(key, done, "Pushing"))
                progress.finish(key, "Pushed")

        try:
            results = await asyncio.gather(*(send(d, s) for d, s in blobs), return_exceptions=True)
            for r in results:
                if isinstance(r, BaseException):
                    raise r
            await client.put_manifest(repo, target.tag or "latest", raw, media_type)
        finally:
            progress.close()
    digest = Digest.of(raw)
    store.add(manifest_digest=digest, manifest_media_type=media_type,
              config_digest=Digest.parse(image.id), layers=layers,
              repo_digest=f"{Reference(target.domain, target.repository).familiar()}@{digest}")
    say(f"{target.tag}: digest: {digest} size: {len(raw)}")
    return digest

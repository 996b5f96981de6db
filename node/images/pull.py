"""`dockyard pull`: resolve a reference, download what is missing, unpack, record the image.

Order: manifest (an index resolves to this machine's platform or ``--platform``) -> config ->
layers, up to ``PARALLEL`` downloads at a time; each layer is unpacked (in a worker thread) as
soon as its blob is verified, since snapshots are independent directories stacked only by
overlayfs. The image record is written last: until then nothing names the new blobs.
"""
from __future__ import annotations

import asyncio
import errno
import platform as host_platform
import sys
from pathlib import Path
from typing import TextIO

from oci import mediatypes as mt
from oci.manifest import ImageConfig, ImageIndex, ManifestError, Platform, chain_ids, parse_manifest
from oci.reference import InvalidReference, Reference

from .client import RegistryClient
from .errors import ImageError
from .progress import Progress, for_terminal, line_writer
from .store import Image, ImageStore

PARALLEL = 6
MAX_CONFIG_SIZE = 8 << 20  # configs are read whole; real ones are a few KiB
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
         "s390x": "s390x", "riscv64": "riscv64"}


def default_platform() -> Platform:
    machine = host_platform.machine()
    arch = _ARCH.get(machine, machine)
    return Platform("linux", arch, "v8" if arch == "arm64" else "v7" if arch == "arm" else None)


def choose(index: ImageIndex, want: Platform):
    """The index entry for ``want``; a missing variant in either matches (docker is as lenient)."""
    for desc in index.manifests:
        p = desc.platform
        if p is None or desc.media_type not in mt.IMAGE_MANIFESTS:
            continue
        if p.os == want.os and p.architecture == want.architecture and (
                not want.variant or not p.variant or p.variant == want.variant):
            return desc
    offered = ", ".join(str(d.platform) for d in index.manifests if d.platform) or "none"
    raise ImageError(f"no matching manifest for {want} in the manifest list entries (offered: {offered})")


def pull_image(root: Path, ref: str, platform: str | None = None, quiet: bool = False,
               out: TextIO | None = None) -> Image:
    """Pull ``ref`` into the store at ``root`` and return it. Prints docker's lines to ``out``
    (stderr by default, so `dockyard run` keeps its stdout for the container) unless quiet."""
    return asyncio.run(pull_async(Path(root), ref, platform, quiet, out or sys.stderr))


async def pull_async(root: Path, ref: str, platform: str | None, quiet: bool, out: TextIO) -> Image:
    try:
        reference = Reference.parse(ref)
        want = Platform.parse(platform) if platform else default_platform()
    except (InvalidReference, ValueError) as e:
        raise ImageError(str(e)) from None
    store = ImageStore(root)
    store.content.settle()  # what earlier commands unpacked: by now mostly written back already
    say = line_writer(out, quiet)
    say(f"{reference.reference if not reference.digest else reference.digest}: Pulling from {reference.repository}")
    progress = for_terminal(quiet, out)
    try:
        with store.writing():
            async with RegistryClient(reference.domain) as client:
                image, fresh = await _pull(client, store, reference, want, progress)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise ImageError(f"no space left on device under {root} while pulling {reference.familiar()}") from None
        raise
    finally:
        progress.close()
    top = image.repo_digests[-1].rsplit("@", 1)[1] if image.repo_digests else image.manifest_digest
    say(f"Digest: {top}")
    status = "Downloaded newer image" if fresh else "Image is up to date"
    say(f"Status: {status} for {reference.familiar()}")
    line_writer(out)(str(reference))
    return image


async def _pull(client: RegistryClient, store: ImageStore, ref: Reference, want: Platform,
                progress: Progress) -> tuple[Image, bool]:
    repo = ref.repository
    raw, content_type, top_digest = await client.get_manifest(repo, ref.reference)
    try:
        manifest = parse_manifest(raw, content_type)
        store.content.write_blob(raw)
        if isinstance(manifest, ImageIndex):
            desc = choose(manifest, want)
            raw, content_type, digest = await client.get_manifest(repo, str(desc.digest))
            manifest = parse_manifest(raw, content_type)
            if isinstance(manifest, ImageIndex):
                raise ImageError("nested index in a manifest list is not supported")
            store.content.write_blob(raw)
        else:
            digest = top_digest
        if manifest.config.media_type not in mt.CONFIGS:
            raise ImageError(f"{ref.familiar()} is not a container image (config type {manifest.config.media_type})")
        if manifest.config.size > MAX_CONFIG_SIZE:
            raise ImageError(f"image config of {ref.familiar()} is larger than {MAX_CONFIG_SIZE} bytes")
        if not store.content.has_blob(manifest.config.digest):
            await client.fetch_blob(repo, manifest.config.digest, manifest.config.size, store.content)
        config = ImageConfig.parse(store.content.read_blob(manifest.config.digest))
    except ManifestError as e:
        raise ImageError(f"invalid manifest for {ref.familiar()}: {e}") from None
    if len(config.diff_ids) != len(manifest.layers):
        raise ImageError(f"invalid image {ref.familiar()}: {len(manifest.layers)} layers but "
                         f"{len(config.diff_ids)} diff_ids in its config")
    chains = chain_ids(config.diff_ids)
    fresh = False
    gate = asyncio.Semaphore(PARALLEL)

    async def layer(i: int) -> None:
        nonlocal fresh
        desc, key = manifest.layers[i], manifest.layers[i].digest.short
        try:
            mt.layer_compression(desc.media_type)
        except ValueError:
            raise ImageError(f"layer {desc.digest} has unsupported media type {desc.media_type}") from None
        if store.content.has_blob(desc.digest) and store.content.has_snapshot(chains[i]):
            progress.add(key, desc.size, "Already exists")
            return
        fresh = True
        progress.add(key, desc.size, "Pulling fs layer")
        async with gate:
            if not store.content.has_blob(desc.digest):
                await client.fetch_blob(repo, desc.digest, desc.size, store.content, lambda done: progress.update(
                    key, done, "Verifying Checksum" if done >= desc.size else "Downloading"))
                progress.update(key, desc.size, "Download complete")
        progress.update(key, desc.size, "Extracting")
        await asyncio.to_thread(store.content.unpack, desc.digest, config.diff_ids[i], chains[i])
        progress.finish(key, "Pull complete")

    results = await asyncio.gather(*(layer(i) for i in range(len(manifest.layers))), return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    layers = [{"digest": str(d.digest), "size": d.size, "media_type": d.media_type, "diff_id": str(config.diff_ids[i])}
              for i, d in enumerate(manifest.layers)]
    tag = ref.with_tag(ref.tag).familiar() if ref.tag else None
    repo_digest = f"{Reference(ref.domain, ref.repository).familiar()}@{top_digest}"
    try:
        before = store.get(tag or f"{ref.name}@{top_digest}").id
    except ImageError:
        before = None
    image = store.add(manifest_digest=digest, manifest_media_type=manifest.media_type, config_digest=manifest.config.digest,
                      layers=layers, repo_tag=tag, repo_digest=repo_digest,
                      index_digest=top_digest if top_digest != digest else None)
    return image, fresh or before != image.id

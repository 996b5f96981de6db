"""What a pushed manifest refers to, and whether the repository holds it: a pure check (it reads
the index, it writes nothing).

Every reference must be readable through *this* repository's links, because every later read of
a blob (the API, the catalog, the referrers list, GC's mark) goes through those links and never
by digest alone. The one exception is a foreign layer: a layer of a non-distributable media type
that names where it lives (`urls`). Such a layer is never read from this registry, so it need
not be here. Anything else that carries `urls` is refused: a config or an index child with `urls`
used to skip the check, which let a manifest name another repository's private config (#13.2).
"""
from __future__ import annotations

from dataclasses import dataclass

from oci import mediatypes as mt
from oci.manifest import Descriptor, ImageIndex, ImageManifest

from ..index import Index
from .errors import ManifestBlobUnknown, ManifestInvalid

# Layers that may live elsewhere (image-spec "non-distributable", Docker's "foreign" layers).
FOREIGN_LAYERS = frozenset({mt.OCI_LAYER_NONDIST, mt.OCI_LAYER_NONDIST_GZIP, mt.OCI_LAYER_NONDIST_ZSTD,
                            mt.DOCKER_LAYER_FOREIGN})


@dataclass(frozen=True)
class References:
    blobs: tuple[str, ...]  # blob digests the manifest needs in the repository (config, layers)
    children: tuple[str, ...]  # child manifest digests (indexes)
    missing: frozenset[str]  # of those, what the repository does not link
    needs_empty_config: bool = False  # only the well-known `{}` config is missing: the caller may store it
    mark: int | None = None  # before_bytes(bytes_of)'s mark, when check_references was asked to take it

    def raise_if_missing(self, name: str) -> None:
        if self.missing:
            first = sorted(self.missing)[0]
            raise ManifestBlobUnknown(
                detail={"digest": first, "missing": sorted(self.missing)[:20]},
                message=f"manifest references {len(self.missing)} blob(s) or manifest(s) not in repository {name}, "
                        f"e.g. {first}",
            )


def _refuse_urls(where: str, why: str) -> ManifestInvalid:
    return ManifestInvalid(detail={"field": f"{where}.urls"}, message=f"manifest invalid: {where}.urls: {why}")


def check_urls(manifest: ImageManifest | ImageIndex) -> None:
    """`urls` only on layers of the non-distributable media types; ManifestInvalid otherwise."""
    if manifest.subject is not None and manifest.subject.urls:
        raise _refuse_urls("subject", "a subject must be in the repository")
    if isinstance(manifest, ImageIndex):
        for i, child in enumerate(manifest.manifests):
            if child.urls:
                raise _refuse_urls(f"manifests[{i}]", "an index entry must be in the repository")
        return
    if manifest.config.urls:
        raise _refuse_urls("config", "a config descriptor never takes urls")
    for i, layer in enumerate(manifest.layers):
        if layer.urls and layer.media_type not in FOREIGN_LAYERS:
            raise _refuse_urls(f"layers[{i}]", f"only non-distributable layers may live elsewhere, "
                                               f"not {layer.media_type[:100]!r}")


def _is_foreign(desc: Descriptor) -> bool:
    return bool(desc.urls) and desc.media_type in FOREIGN_LAYERS


def image_blobs(manifest: ImageManifest) -> tuple[str, ...]:
    """The blobs (config, layers) an image manifest needs in its repository, in order, once each."""
    return tuple(dict.fromkeys(str(d.digest) for d in manifest.references() if not _is_foreign(d)))


def image_references(manifest: ImageManifest, blobs: tuple[str, ...], missing: set[str],
                     mark: int | None = None) -> References:
    """An image manifest's References from what the index said is missing of ``blobs``."""
    empty = str(manifest.config.digest) == mt.EMPTY_JSON_DIGEST and mt.EMPTY_JSON_DIGEST in missing
    return References(blobs, (), frozenset(missing - {mt.EMPTY_JSON_DIGEST} if empty else missing), empty, mark)


async def check_references(index: Index, name: str, manifest: ImageManifest | ImageIndex,
                           bytes_of: str | None = None) -> References:
    """``bytes_of``: the manifest's own digest; when nothing is missing, its bytes' GC review is
    queued in the same transaction as the check (``Index.missing_or_before_bytes``: one thread
    call, not two) and ``References.mark`` is its mark. Image manifests only; else mark is None."""
    check_urls(manifest)
    if isinstance(manifest, ImageManifest):
        blobs = image_blobs(manifest)
        mark = None
        if bytes_of is not None:
            missing, mark = await index.missing_or_before_bytes(name, list(blobs), bytes_of)
        else:
            missing = await index.missing_blobs(name, list(blobs))
        return image_references(manifest, blobs, missing, mark)
    children = tuple(dict.fromkeys(str(d.digest) for d in manifest.manifests))
    missing = await index.missing_manifests(name, list(children))
    # Artifact indexes may also list plain blobs.
    missing = await index.missing_blobs(name, sorted(missing)) if missing else missing
    return References((), children, frozenset(missing))

"""Manifests, indexes and image configs: parse and validate, keeping the raw bytes.

The digest of a manifest is the digest of the exact bytes received, so ``parse_manifest`` never
re-serialises: the parsed objects carry ``raw`` and the callers store and serve that.
One parser per media type family (image manifest, index); schema1 is refused.
"""
from __future__ import annotations

import json
from .record import MISSING, Factory, record

from . import mediatypes as mt
from . import schema
from .digest import Digest, InvalidDigest

# Annotations only (postponed): importing typing would cost `dockyard run` ~2.5 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_MANIFEST_SIZE = 4 * 1024 * 1024
_set = object.__setattr__  # a frozen record's fields, in the hand-written __init__s


class ManifestError(ValueError):
    """The bytes are not a manifest this project accepts; the message says why, and ``field``
    names the offending field's path when one is to blame (``layers[0].digest``)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def check_types(doc: Any, spec: Any, what: str = "") -> None:
    """ManifestError naming the field whose JSON type is wrong (see oci/schema.py)."""
    try:
        schema.check(doc, spec)
    except schema.SchemaError as e:
        raise ManifestError(f"{what}{e}", e.field) from None


@record(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None

    def __init__(self, os, architecture, variant=None, os_version=None):
        _set(self, "os", os)
        _set(self, "architecture", architecture)
        _set(self, "variant", variant)
        _set(self, "os_version", os_version)

    @classmethod
    def from_json(cls, d: Any) -> "Platform":
        check_types(d, schema.PLATFORM, "platform.")
        return cls(d["os"], d["architecture"], d.get("variant"), d.get("os.version"))

    @classmethod
    def parse(cls, text: str) -> "Platform":
        """`os/arch[/variant]` as docker's --platform takes it."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"invalid platform {text!r}: expected os/arch[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@record(frozen=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    annotations: dict[str, str] | None = None
    platform: Platform | None = None
    artifact_type: str | None = None
    data: bytes | None = None

    def __init__(self, media_type, digest, size, urls=(), annotations=None, platform=None,
                 artifact_type=None, data=None):
        _set(self, "media_type", media_type)
        _set(self, "digest", digest)
        _set(self, "size", size)
        _set(self, "urls", urls)
        _set(self, "annotations", annotations)
        _set(self, "platform", platform)
        _set(self, "artifact_type", artifact_type)
        _set(self, "data", data)

    @classmethod
    def from_json(cls, d: Any, where: str = "descriptor") -> "Descriptor":
        if not isinstance(d, dict):
            raise ManifestError(f"{where} must be an object", where)
        media_type = d.get("mediaType")
        if not isinstance(media_type, str) or not media_type:
            raise ManifestError(f"{where} has no mediaType")
        try:
            digest = Digest.parse(d.get("digest", ""))
        except InvalidDigest as e:
            raise ManifestError(f"{where}: {e}") from None
        size = d.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"{where} has an invalid size")
        annotations = d.get("annotations")
        if annotations is not None and not (
            isinstance(annotations, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in annotations.items())
        ):
            raise ManifestError(f"{where} annotations must map strings to strings")
        platform = Platform.from_json(d["platform"]) if d.get("platform") is not None else None
        urls = d.get("urls") or ()
        if not isinstance(urls, (list, tuple)) or not all(isinstance(u, str) for u in urls):
            raise ManifestError(f"{where} urls must be a list of strings")
        artifact_type = d.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise ManifestError(f"{where} artifactType must be a string")
        return cls(media_type, digest, size, tuple(urls), annotations, platform, artifact_type)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.urls:
            d["urls"] = list(self.urls)
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        if self.platform:
            p = {"architecture": self.platform.architecture, "os": self.platform.os}
            if self.platform.variant:
                p["variant"] = self.platform.variant
            d["platform"] = p
        return d


@record(frozen=True)
class ImageManifest:
    raw: bytes
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None

    def __init__(self, raw, media_type, config, layers, subject=None, artifact_type=None,
                 annotations=None):
        _set(self, "raw", raw)
        _set(self, "media_type", media_type)
        _set(self, "config", config)
        _set(self, "layers", layers)
        _set(self, "subject", subject)
        _set(self, "artifact_type", artifact_type)
        _set(self, "annotations", annotations)

    @property
    def digest(self) -> Digest:
        return Digest.of(self.raw)

    def references(self) -> list[Descriptor]:
        """Blobs that must exist before this manifest may be stored."""
        return [self.config, *self.layers]

    @property
    def effective_artifact_type(self) -> str:
        """What the referrers API reports: artifactType, else the config's media type."""
        return self.artifact_type or self.config.media_type


@record(frozen=True)
class ImageIndex:
    raw: bytes
    media_type: str
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None

    def __init__(self, raw, media_type, manifests, subject=None, artifact_type=None,
                 annotations=None):
        _set(self, "raw", raw)
        _set(self, "media_type", media_type)
        _set(self, "manifests", manifests)
        _set(self, "subject", subject)
        _set(self, "artifact_type", artifact_type)
        _set(self, "annotations", annotations)

    @property
    def digest(self) -> Digest:
        return Digest.of(self.raw)

    def references(self) -> list[Descriptor]:
        return list(self.manifests)

    @property
    def effective_artifact_type(self) -> str | None:
        return self.artifact_type


Manifest = ImageManifest | ImageIndex


def _load(raw: bytes, max_size: int = MAX_MANIFEST_SIZE) -> dict[str, Any]:
    if len(raw) > max_size:
        raise ManifestError(f"manifest is larger than {max_size} bytes")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise ManifestError(f"manifest is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ManifestError("manifest must be a JSON object")
    return doc


def detect_media_type(raw: bytes, content_type: str | None = None, max_size: int = MAX_MANIFEST_SIZE) -> str:
    """The media type of a manifest: its own mediaType field, else the Content-Type it came with."""
    doc = _load(raw, max_size)
    inner = doc.get("mediaType")
    ct = (content_type or "").split(";")[0].strip()
    if isinstance(inner, str) and inner:
        return inner
    if ct and ct not in ("application/json", "application/octet-stream", "text/plain"):
        return ct
    if doc.get("schemaVersion") == 1:
        return mt.DOCKER_SCHEMA1
    # OCI allows mediaType to be omitted; guess from the shape.
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "config" in doc:
        return mt.OCI_MANIFEST
    raise ManifestError("cannot tell the manifest's media type")


def parse_manifest(raw: bytes, content_type: str | None = None, max_size: int = MAX_MANIFEST_SIZE) -> Manifest:
    """Parse and validate manifest bytes. Raises ManifestError with a readable reason."""
    doc = _load(raw, max_size)
    media_type = detect_media_type(raw, content_type, max_size)
    inner = doc.get("mediaType")
    ct = (content_type or "").split(";")[0].strip()
    if media_type in mt.SCHEMA1 or doc.get("schemaVersion") == 1:
        raise ManifestError("Docker schema1 manifests are not supported; push with a client that writes schema2 or OCI")
    if isinstance(inner, str) and ct in mt.MANIFESTS and inner != ct:
        raise ManifestError(f"mediaType {inner!r} does not match Content-Type {ct!r}")
    if doc.get("schemaVersion") != 2:
        raise ManifestError("schemaVersion must be 2", "schemaVersion")
    if media_type in mt.IMAGE_MANIFESTS:
        check_types(doc, schema.IMAGE_MANIFEST)
    elif media_type in mt.INDEXES:
        check_types(doc, schema.IMAGE_INDEX)
    subject = Descriptor.from_json(doc["subject"], "subject") if doc.get("subject") is not None else None
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestError("artifactType must be a string")
    annotations = doc.get("annotations")
    if annotations is not None and not isinstance(annotations, dict):
        raise ManifestError("annotations must be an object")
    if media_type in mt.IMAGE_MANIFESTS:
        if "manifests" in doc:
            raise ManifestError("an image manifest cannot have 'manifests'")
        config = Descriptor.from_json(doc.get("config"), "config")
        layers = doc.get("layers", [] if media_type == mt.OCI_MANIFEST else None)
        if not isinstance(layers, list):
            raise ManifestError("layers must be a list")
        descs = tuple(Descriptor.from_json(l, f"layers[{i}]") for i, l in enumerate(layers))
        if media_type == mt.DOCKER_MANIFEST and not descs:
            raise ManifestError("a Docker schema2 manifest needs at least one layer")
        if config.media_type == mt.OCI_EMPTY and not artifact_type and media_type == mt.OCI_MANIFEST:
            raise ManifestError("artifactType is required when config is the empty descriptor")
        return ImageManifest(raw, media_type, config, descs, subject, artifact_type, annotations)
    if media_type in mt.INDEXES:
        if "config" in doc or "layers" in doc:
            raise ManifestError("an index cannot have 'config' or 'layers'")
        manifests = doc.get("manifests")
        if not isinstance(manifests, list):
            raise ManifestError("manifests must be a list")
        descs = tuple(Descriptor.from_json(m, f"manifests[{i}]") for i, m in enumerate(manifests))
        return ImageIndex(raw, media_type, descs, subject, artifact_type, annotations)
    raise ManifestError(f"unsupported manifest media type {media_type!r}")


@record
class ImageConfig:
    """The parts of an image config (OCI or Docker) that the node uses."""

    raw: bytes
    architecture: str = ""
    os: str = ""
    variant: str | None = None
    created: str | None = None
    config: dict[str, Any] = Factory(dict)  # Entrypoint, Cmd, Env, WorkingDir, User...
    diff_ids: list[Digest] = Factory(list)
    history: list[dict[str, Any]] = Factory(list)

    def __init__(self, raw, architecture="", os="", variant=None, created=None, config=MISSING,
                 diff_ids=MISSING, history=MISSING):
        self.raw = raw
        self.architecture = architecture
        self.os = os
        self.variant = variant
        self.created = created
        self.config = {} if config is MISSING else config
        self.diff_ids = [] if diff_ids is MISSING else diff_ids
        self.history = [] if history is MISSING else history

    @classmethod
    def parse(cls, raw: bytes) -> "ImageConfig":
        try:
            doc = json.loads(raw)
        except ValueError as e:
            raise ManifestError(f"image config is not valid JSON: {e}") from None
        if not isinstance(doc, dict):
            raise ManifestError("image config must be a JSON object")
        rootfs = doc.get("rootfs") or {}
        if not isinstance(rootfs, dict):
            raise ManifestError("image config rootfs must be an object")
        try:
            diff_ids = [Digest.parse(d) for d in rootfs.get("diff_ids") or []]
        except (InvalidDigest, TypeError) as e:
            raise ManifestError(f"image config has a bad diff_id: {e}") from None
        cfg = doc.get("config") or {}
        if not isinstance(cfg, dict):
            raise ManifestError("image config 'config' must be an object")
        def text(key: str) -> str | None:  # a string field, whatever a stored config holds there
            value = doc.get(key)
            return value if isinstance(value, str) else None

        return cls(
            raw=raw,
            architecture=text("architecture") or "",
            os=text("os") or "",
            variant=text("variant"),
            created=text("created"),
            config=cfg,
            diff_ids=diff_ids,
            history=doc.get("history") or [],
        )

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant)


def validate_image_config(raw: bytes) -> None:
    """A pushed image config: a JSON object whose fields have image-spec's JSON types."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as e:
        raise ManifestError(f"image config is not valid JSON: {e}", "config") from None
    if not isinstance(doc, dict):
        raise ManifestError("image config must be a JSON object", "config")
    check_types(doc, schema.IMAGE_CONFIG, "image config: ")


def chain_ids(diff_ids: list[Digest]) -> list[Digest]:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[Digest] = []
    for d in diff_ids:
        out.append(d if not out else Digest.of(f"{out[-1]} {d}".encode()))
    return out

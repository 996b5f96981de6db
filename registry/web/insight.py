"""What a person wants to know about an image at a glance, from what was pushed with it.

- ``describe``: the repository's description card, from the OCI annotations
  ``org.opencontainers.image.{description,source,url,licenses,version}`` of the headline tag's
  manifest, else the same keys among its config's labels (docker build ``LABEL``), else, for an
  index, its first platform's.
- ``badge``: what a referrer is (a signature, an SBOM, an attestation) by its artifact type:
  cosign (sigstore bundles and cosign's own signature types), Notation, SPDX, CycloneDX, in-toto.

Everything here is user input: values are cut to a sane length and only ``http(s)`` URLs become
links (the templates escape the text; a ``javascript:`` source stays text).
"""
from __future__ import annotations

from typing import Any

from .images import ImageSummary

PREFIX = "org.opencontainers.image."
FIELDS = ("description", "source", "url", "licenses", "version")
MAX_TEXT = 500

SIGNATURES = {
    "application/vnd.cncf.notary.signature": "notation",
    "application/vnd.dev.cosign.artifact.sig.v1+json": "cosign",
    "application/vnd.dev.cosign.simplesigning.v1+json": "cosign",
    "application/vnd.dev.sigstore.bundle.v0.3+json": "cosign",
    "application/vnd.dev.sigstore.bundle+json;version=0.3": "cosign",
}
SBOMS = {
    "application/spdx+json": "spdx",
    "text/spdx": "spdx",
    "application/vnd.spdx+json": "spdx",
    "application/vnd.cyclonedx+json": "cyclonedx",
    "application/vnd.cyclonedx+xml": "cyclonedx",
    "application/vnd.cyclonedx": "cyclonedx",
    "application/vnd.syft+json": "syft",
}
ATTESTATIONS = {
    "application/vnd.in-toto+json": "in-toto",
    "application/vnd.dev.cosign.artifact.attestation.v1+json": "cosign",
}
# cosign's tag scheme (before the referrers API): sha256-<hex>.sig / .att / .sbom
TAG_SUFFIXES = {".sig": ("signature", "cosign"), ".att": ("attestation", "cosign"), ".sbom": ("sbom", "cosign")}


def _clean(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())  # no control characters or line breaks in a one-line card
    return text[:MAX_TEXT] or None


def link(value: str | None) -> str | None:
    """The value, if it may be an href (http or https only)."""
    if value and value.lower().startswith(("https://", "http://")) and '"' not in value:
        return value
    return None


def describe(summary: ImageSummary | None, platform_summary: ImageSummary | None = None,
             tag: str | None = None) -> dict[str, str | None]:
    """The description card: each field from annotations, else labels, else the platform's."""
    out: dict[str, str | None] = dict.fromkeys(FIELDS)
    sources: list[dict[str, Any]] = []
    for s in (summary, platform_summary):
        if s is not None:
            sources.append(s.annotations)
            labels = s.config.get("Labels") if isinstance(s.config, dict) else None
            if isinstance(labels, dict):
                sources.append(labels)
    for key in FIELDS:
        for source in sources:
            value = _clean(source.get(PREFIX + key))
            if value:
                out[key] = value
                break
    out["tag"] = tag if any(out[k] for k in FIELDS) else None
    return out


def badge(artifact_type: str | None, media_type: str | None = None) -> dict[str, str] | None:
    """{kind, format} for a known referrer type, else None (shown as a plain referrer)."""
    t = (artifact_type or media_type or "").lower()
    base = t.split(";")[0].strip()
    for table, kind in ((SIGNATURES, "signature"), (SBOMS, "sbom"), (ATTESTATIONS, "attestation")):
        if t in table:
            return {"kind": kind, "format": table[t]}
        if base in table:
            return {"kind": kind, "format": table[base]}
    if "cosign" in t and "sig" in t:
        return {"kind": "signature", "format": "cosign"}
    if "spdx" in t:
        return {"kind": "sbom", "format": "spdx"}
    if "cyclonedx" in t:
        return {"kind": "sbom", "format": "cyclonedx"}
    if "in-toto" in t or "intoto" in t:
        return {"kind": "attestation", "format": "in-toto"}
    return None


def attachment_tag_names(digest: str) -> dict[str, tuple[str, str]]:
    """cosign tag-scheme names for a manifest digest -> (kind, format)."""
    alg, _, hex_ = digest.partition(":")
    if not hex_:
        return {}
    return {f"{alg}-{hex_}{suffix}": what for suffix, what in TAG_SUFFIXES.items()}

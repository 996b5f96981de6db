import json

import pytest

from oci import mediatypes as mt
from oci.digest import Digest, Hasher, InvalidDigest
from oci.manifest import ManifestError, chain_ids, parse_manifest
from oci.reference import InvalidReference, Reference, validate_name


def test_digest_parse_and_hash():
    d = Digest.of(b"hello")
    assert str(d) == "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert Digest.parse(str(d)) == d
    h = Hasher("sha512")
    h.update(b"hel"), h.update(b"lo")
    assert h.digest() == Digest.of(b"hello", "sha512") and h.size == 5
    for bad in ["", "sha256:abc", "md5:" + "a" * 32, "sha256:" + "A" * 64, "sha256:../" + "a" * 61]:
        with pytest.raises(InvalidDigest):
            Digest.parse(bad)


@pytest.mark.parametrize(
    "text,name,ref",
    [
        ("busybox", "docker.io/library/busybox", "latest"),
        ("127.0.0.1:5000/team/web:v1", "127.0.0.1:5000/team/web", "v1"),
        ("localhost/x@sha256:" + "b" * 64, "localhost/x", "sha256:" + "b" * 64),
        ("index.docker.io/user/app:2", "docker.io/user/app", "2"),
    ],
)
def test_reference_normalisation(text, name, ref):
    r = Reference.parse(text)
    assert r.name == name and r.reference == ref


@pytest.mark.parametrize("bad", ["", "UPPER", "a//b", "-a", "a/../b", "x:bad tag", "a" * 300, "a@sha256:xyz"])
def test_reference_rejects(bad):
    with pytest.raises(InvalidReference):
        Reference.parse(bad) if "/" in bad or ":" in bad or "@" in bad else validate_name(bad)


def _desc(data: bytes, media_type: str) -> dict:
    return {"mediaType": media_type, "digest": str(Digest.of(data)), "size": len(data)}


def test_manifest_keeps_raw_bytes_and_refuses_schema1():
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": _desc(b"{}", mt.OCI_CONFIG),
           "layers": [_desc(b"l", mt.OCI_LAYER_GZIP)]}
    raw = json.dumps(doc, indent=3).encode()
    m = parse_manifest(raw, mt.OCI_MANIFEST)
    assert m.raw == raw and m.digest == Digest.of(raw) and len(m.references()) == 2
    with pytest.raises(ManifestError, match="schema1"):
        parse_manifest(json.dumps({"schemaVersion": 1, "name": "x"}).encode(), mt.DOCKER_SCHEMA1)
    with pytest.raises(ManifestError, match="artifactType"):
        parse_manifest(json.dumps({**doc, "config": _desc(b"{}", mt.OCI_EMPTY)}).encode(), mt.OCI_MANIFEST)
    with pytest.raises(ManifestError):
        parse_manifest(b"not json", mt.OCI_MANIFEST)


def test_chain_ids():
    a, b = Digest.of(b"a"), Digest.of(b"b")
    assert chain_ids([a, b]) == [a, Digest.of(f"{a} {b}".encode())]

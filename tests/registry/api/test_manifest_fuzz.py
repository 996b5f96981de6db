"""Property tests over the manifest parsers (#13.4, #13.3): whatever JSON a client sends in any
field of any manifest media type (or of an image config), the answer is a 4xx in the OCI error
envelope or a success, never a 5xx, and the catalog pages of the repository keep working.

The parser property runs under hypothesis with shrinking. The API property draws its inputs with
the same strategies (hypothesis cannot drive an async test directly), then sends them all.
"""
from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oci import mediatypes as mt
from oci.digest import Digest
from oci.manifest import ManifestError, parse_manifest, validate_image_config
from tests.registry.oci_client import push_blob

CONFIG = json.dumps({"architecture": "arm64", "os": "linux", "variant": "v8", "config": {"Env": ["A=1"], "Cmd": ["sh"]},
                     "rootfs": {"type": "layers", "diff_ids": []},
                     "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "x"}]}).encode()
LAYER = b"fuzz-layer"


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    """SQLite only: what is under test is parsing, the same on either index backend."""
    from registry.app import create_app
    from registry.config import RegistryConfig

    config = RegistryConfig(data_dir=str(tmp_path / "data"), database_url=f"sqlite+aiosqlite:///{tmp_path / 'i.db'}")
    return await aiohttp_client(create_app(config.finish()))


def _desc(data: bytes, media_type: str) -> dict:
    return {"mediaType": media_type, "digest": str(Digest.of(data)), "size": len(data)}


CHILD = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": _desc(CONFIG, mt.OCI_CONFIG),
                    "layers": [_desc(LAYER, mt.OCI_LAYER_GZIP)]}).encode()
TEMPLATES = {
    mt.OCI_MANIFEST: json.loads(CHILD) | {"annotations": {"a": "b"}, "subject": _desc(CHILD, mt.OCI_MANIFEST)},
    mt.DOCKER_MANIFEST: {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST, "config": _desc(CONFIG, mt.DOCKER_CONFIG),
                         "layers": [_desc(LAYER, mt.DOCKER_LAYER_GZIP)]},
    mt.OCI_INDEX: {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "artifactType": "application/x.a",
                   "manifests": [_desc(CHILD, mt.OCI_MANIFEST) | {"platform": {"os": "linux", "architecture": "arm",
                                                                                "variant": "v7"}}]},
    mt.DOCKER_MANIFEST_LIST: {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST,
                              "manifests": [_desc(CHILD, mt.OCI_MANIFEST)
                                            | {"platform": {"os": "linux", "architecture": "amd64"}}]},
}


def _paths(value, prefix=()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, prefix + (i,))
    return out


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.sampled_from(["sha256:" + "0" * 64, "sha256:xyz", "md5:abc", ""]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6)


@st.composite
def mutated(draw, template: dict) -> dict:
    doc = copy.deepcopy(template)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = draw(json_values)
    return doc


manifests = st.sampled_from(sorted(TEMPLATES)).flatmap(lambda m: st.tuples(st.just(m), mutated(TEMPLATES[m])))
configs = mutated(json.loads(CONFIG))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifests)
def test_parsers_raise_only_manifest_errors(case):
    media_type, doc = case
    try:
        parse_manifest(json.dumps(doc).encode(), media_type)
    except ManifestError:
        pass


@settings(max_examples=300, deadline=None)
@given(configs)
def test_config_validation_raises_only_manifest_errors(doc):
    try:
        validate_image_config(json.dumps(doc).encode())
    except ManifestError:
        pass


def _draw(strategy, n: int) -> list:
    seen: list = []

    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(x):
        seen.append(x)

    collect()
    return seen


async def _envelope_or_success(r) -> None:
    assert r.status < 500, (r.status, await r.text())
    if r.status >= 400:
        body = await r.json()
        assert body["errors"][0]["code"] and body["errors"][0]["message"]


async def test_manifest_puts_answer_4xx_never_5xx(client):
    for data in (CONFIG, LAYER, CHILD):
        await push_blob(client, "fuzz/m", data)
    r = await client.put(f"/v2/fuzz/m/manifests/{Digest.of(CHILD)}", data=CHILD, headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 201, await r.text()
    for i, (media_type, doc) in enumerate(_draw(manifests, 120)):
        r = await client.put(f"/v2/fuzz/m/manifests/t{i % 7}", data=json.dumps(doc).encode(),
                             headers={"Content-Type": media_type})
        await _envelope_or_success(r)
    for path in ("/ui/r/fuzz/m", "/api/v1/repositories/fuzz/m/tags"):
        r = await client.get(path)
        assert r.status == 200, (path, r.status)
    for i in range(7):
        for path in (f"/ui/r/fuzz/m/-/manifest/t{i}", f"/api/v1/repositories/fuzz/m/manifests/t{i}"):
            assert (await client.get(path)).status in (200, 404), path


async def test_config_pushes_answer_4xx_never_5xx_and_pages_render(client):
    await push_blob(client, "fuzz/c", LAYER)
    for i, doc in enumerate(_draw(configs, 60)):
        cfg = json.dumps(doc).encode()
        await push_blob(client, "fuzz/c", cfg)
        raw = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": _desc(cfg, mt.OCI_CONFIG),
                          "layers": [_desc(LAYER, mt.OCI_LAYER_GZIP)]}).encode()
        r = await client.put(f"/v2/fuzz/c/manifests/t{i}", data=raw, headers={"Content-Type": mt.OCI_MANIFEST})
        await _envelope_or_success(r)
        if r.status == 201:
            assert (await client.get(f"/ui/r/fuzz/c/-/manifest/t{i}")).status == 200
    for path in ("/ui/r/fuzz/c", "/api/v1/repositories/fuzz/c/tags"):
        r = await client.get(path)
        assert r.status in (200, 404), (path, r.status)

"""Quotas per namespace: refused before bytes are committed; usage exact against a recomputation."""
from __future__ import annotations

import json
import random

from sqlalchemy import select

from oci import mediatypes as mt
from oci.digest import Digest
from registry import state
from registry.app import create_app
from registry.index.models import Blob, Manifest, Repository, RepositoryBlob
from registry.lifecycle.quotas import list_quotas, set_quota
from tests.registry.oci_client import image_manifest

HEADERS = {"Content-Type": mt.OCI_MANIFEST}


async def _recompute(index, namespace: str) -> int:
    """The definition, in Python: each distinct digest linked or stored as a manifest once."""

    def q(conn):
        repos = {i for i, n in conn.execute(select(Repository.id, Repository.name)).all()
                 if n.split("/", 1)[0] == namespace}
        digests = {d for r, d in conn.execute(select(RepositoryBlob.repository_id, RepositoryBlob.digest)).all() if r in repos}
        digests |= {d for r, d in conn.execute(select(Manifest.repository_id, Manifest.digest)).all() if r in repos}
        sizes = dict(conn.execute(select(Blob.digest, Blob.size)).all())
        return sum(sizes[d] for d in digests if d in sizes)

    return await index.db.read(q)


async def test_push_over_quota_is_denied_before_bytes_are_stored(aiohttp_client, config):
    app = create_app(config)
    client = await aiohttp_client(app)
    idx = app[state.INDEX]
    await set_quota(idx, "team", 10_000)
    small = b"s" * 4000
    r = await client.post(f"/v2/team/web/blobs/uploads/?digest={Digest.of(small)}", data=small)
    assert r.status == 201
    # The same blob in another repository of the namespace counts once.
    r = await client.post(f"/v2/team/api/blobs/uploads/?mount={Digest.of(small)}&from=team/web")
    assert r.status == 201
    big = b"b" * 7000
    r = await client.post(f"/v2/team/web/blobs/uploads/?digest={Digest.of(big)}", data=big)
    assert r.status == 403
    err = (await r.json())["errors"][0]
    assert err["code"] == "DENIED" and err["message"] == "quota exceeded: team uses 4000 of 10000"
    assert await app[state.STORAGE].stat(Digest.of(big)) is None  # refused before the bytes
    # Chunked: refused at commit, the staged bytes stay with the session (cancel removes them).
    r = await client.post("/v2/team/web/blobs/uploads/")
    location = r.headers["Location"]
    r = await client.patch(location, data=big, headers={"Content-Type": "application/octet-stream"})
    r = await client.put(f"{r.headers['Location']}?digest={Digest.of(big)}")
    assert r.status == 403 and await app[state.STORAGE].stat(Digest.of(big)) is None
    # Other namespaces are not limited.
    r = await client.post(f"/v2/other/web/blobs/uploads/?digest={Digest.of(big)}", data=big)
    assert r.status == 201
    assert await list_quotas(idx) == [("team", 4000, 10_000)]
    await set_quota(idx, "team", 0)
    assert await list_quotas(idx) == []


async def test_usage_is_exact_after_random_pushes_mounts_and_deletes(aiohttp_client, config):
    app = create_app(config)
    client = await aiohttp_client(app)
    idx = app[state.INDEX]
    await set_quota(idx, "team", 1 << 40)
    await set_quota(idx, "solo", 1 << 40)
    rng = random.Random(3)
    pool = [rng.randbytes(rng.randrange(100, 2000)) for _ in range(10)]
    repos = ["team/a", "team/b", "team/c/d", "solo", "teamx/a"]
    manifests: list[tuple[str, str]] = []
    for _ in range(60):
        op = rng.random()
        repo = rng.choice(repos)
        if op < 0.4:
            data = rng.choice(pool)
            await client.post(f"/v2/{repo}/blobs/uploads/?digest={Digest.of(data)}", data=data)
        elif op < 0.6:
            src, data = rng.choice(repos), rng.choice(pool)
            await client.post(f"/v2/{repo}/blobs/uploads/?mount={Digest.of(data)}&from={src}")
        elif op < 0.8:
            cfg = json.dumps({"os": "linux", "n": rng.randrange(5)}).encode()
            layers = rng.sample(pool, 2)
            for b in (cfg, *layers):
                await client.post(f"/v2/{repo}/blobs/uploads/?digest={Digest.of(b)}", data=b)
            raw = image_manifest(cfg, layers)
            r = await client.put(f"/v2/{repo}/manifests/t{rng.randrange(3)}", data=raw, headers=HEADERS)
            assert r.status == 201
            manifests.append((repo, str(Digest.of(raw))))
        elif op < 0.9 and manifests:
            repo, digest = manifests.pop(rng.randrange(len(manifests)))
            await client.delete(f"/v2/{repo}/manifests/{digest}")
        else:
            await client.delete(f"/v2/{repo}/blobs/{Digest.of(rng.choice(pool))}")
    listed = {ns: used for ns, used, _ in await list_quotas(idx)}
    for ns in ("team", "solo"):
        assert listed[ns] == await _recompute(idx, ns), ns
    assert listed["team"] > 0 and listed["team"] != await _recompute(idx, "teamx")


def test_quota_commands_print_exact_numbers(tmp_path):
    import subprocess

    from tests.servers import REGISTRY_BIN

    def run(*args):
        return subprocess.run([str(REGISTRY_BIN), "quota", *args, "--data-dir", str(tmp_path)],
                              capture_output=True, text=True, timeout=120)

    assert run("set", "team", "5MiB").returncode == 0
    r = run("ls")
    assert r.returncode == 0 and r.stdout == "team 0 5242880\n"
    r = run("set", "team/web", "1GiB")
    assert r.returncode == 2 and "one path component" in r.stderr and len(r.stderr.splitlines()) == 1

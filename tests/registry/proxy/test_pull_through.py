"""The cache in process: fetch on demand, digests kept, tag_ttl, failure policy, pushes refused."""
from __future__ import annotations

import asyncio
import json
import os

import aiohttp
import pytest

from oci import mediatypes as mt
from oci.digest import Digest
from tests.registry.oci_client import push_blob, push_image

ACCEPT = {"Accept": ", ".join(sorted(mt.MANIFESTS))}


async def _pull(client, name: str, ref: str) -> tuple[str, bytes, list[bytes]]:
    r = await client.get(f"/v2/{name}/manifests/{ref}", headers=ACCEPT)
    assert r.status == 200, await r.text()
    raw = await r.read()
    doc = json.loads(raw)
    blobs = []
    for d in [doc["config"], *doc["layers"]]:
        b = await client.get(f"/v2/{name}/blobs/{d['digest']}")
        assert b.status == 200, await b.text()
        data = await b.read()
        assert str(Digest.of(data)) == d["digest"]
        blobs.append(data)
    return r.headers["Docker-Content-Digest"], raw, blobs


async def _settled(setup) -> None:
    from registry.proxy import PROXY
    for _ in range(400):
        if not setup.app[PROXY].fetches:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("blob fetches still running")


async def test_pull_by_tag_and_digest_keeps_upstream_bytes(setup):
    digest, raw = await push_image(setup.upstream, "lib/app", "1")
    got_digest, got_raw, blobs = await _pull(setup.client, "up/lib/app", "1")
    assert (got_digest, got_raw) == (digest, raw)
    assert len(blobs) == 3
    # a second pull is served from the cache: no upstream request at all (tag_ttl is 1h)
    setup.faulty.reset_counts()
    assert (await _pull(setup.client, "up/lib/app", digest))[1] == raw
    assert (await _pull(setup.client, "up/lib/app", "1"))[1] == raw
    assert sum(setup.faulty.counts.values()) == 0, setup.faulty.counts
    # cached content is ordinary content: in the catalog and the tag list
    r = await setup.client.get("/v2/_catalog")
    assert "up/lib/app" in (await r.json())["repositories"]
    from registry.proxy import cached_origins
    assert await cached_origins(setup.app, ["up/lib/app", "other"]) == {"up/lib/app": "up"}


async def test_tag_ttl_rechecks_with_head_and_follows_a_moved_tag(make_setup):
    s = await make_setup(tag_ttl=0)
    first, _ = await push_image(s.upstream, "lib/moving", "v")
    assert (await _pull(s.client, "up/lib/moving", "v"))[0] == first
    s.faulty.reset_counts()
    assert (await _pull(s.client, "up/lib/moving", "v"))[0] == first
    methods = [m for (m, p), n in s.faulty.counts.items() if "/manifests/" in p for _ in range(n)]
    assert methods == ["HEAD"], s.faulty.counts  # unchanged: HEAD only, no GET of the manifest
    second, raw2 = await push_image(s.upstream, "lib/moving", "v")
    got = await _pull(s.client, "up/lib/moving", "v")
    assert got[0] == second and got[1] == raw2
    # by digest: never asked again
    s.faulty.reset_counts()
    r = await s.client.get(f"/v2/up/lib/moving/manifests/{first}", headers=ACCEPT)
    assert r.status == 200
    assert s.faulty.counts == {}, s.faulty.counts


async def test_upstream_failures_serve_cached_tags_with_a_warning(make_setup):
    s = await make_setup(tag_ttl=0, timeout="3s")
    await push_image(s.upstream, "lib/app", "cached")
    await push_image(s.upstream, "lib/app", "never")
    digest = (await _pull(s.client, "up/lib/app", "cached"))[0]
    for mode in ("429", "503", "stall", "reset"):
        s.faulty.mode = mode
        r = await s.client.get("/v2/up/lib/app/manifests/cached", headers=ACCEPT)
        assert r.status == 200, (mode, await r.text())
        assert r.headers["Docker-Content-Digest"] == digest
        assert r.headers["Warning"].startswith("110 "), r.headers
        assert "may be stale" in r.headers["Warning"]
        r = await s.client.get("/v2/up/lib/app/manifests/never", headers=ACCEPT)
        assert r.status == 503, (mode, r.status)
        assert "Retry-After" in r.headers
        err = (await r.json())["errors"][0]
        assert err["code"] == "UNAVAILABLE"
        if mode == "429":
            assert err["message"] == "upstream up answered 429"
            assert r.headers["Retry-After"] == "7"
        if mode == "503":
            assert err["message"] == "upstream up answered 503"
        if mode == "stall":
            assert "did not answer within 3s" in err["message"]
    s.faulty.mode = "pass"
    r = await s.client.get("/v2/up/lib/app/manifests/cached", headers=ACCEPT)
    assert r.status == 200 and "Warning" not in r.headers


async def test_concurrent_cold_pulls_share_one_upstream_get_per_blob(setup):
    big = bytes(range(256)) * 16384  # 4 MiB: more than one client queue holds
    digest = await push_blob(setup.upstream, "lib/big", big)
    r = await setup.upstream.get(f"/v2/lib/big/blobs/{digest}")
    assert r.status == 200 and await r.read() == big

    async def get() -> bytes:
        r = await setup.client.get(f"/v2/up/lib/big/blobs/{digest}")
        assert r.status == 200, await r.text()
        return await r.read()

    bodies = await asyncio.gather(*(get() for _ in range(10)))
    assert all(b == big for b in bodies)
    assert setup.faulty.gets(digest) == 1, setup.faulty.counts
    # and now it is cached: served locally
    assert await get() == big
    assert setup.faulty.gets(digest) == 1


async def test_one_platform_of_an_index_fetches_only_that_platform(setup):
    amd, amd_raw = await push_image(setup.upstream, "lib/multi", None)
    arm, arm_raw = await push_image(setup.upstream, "lib/multi", None)
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {"mediaType": mt.OCI_MANIFEST, "digest": amd, "size": len(amd_raw), "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": mt.OCI_MANIFEST, "digest": arm, "size": len(arm_raw), "platform": {"os": "linux", "architecture": "arm64"}},
    ]}).encode()
    r = await setup.upstream.put("/v2/lib/multi/manifests/latest", data=index, headers={"Content-Type": mt.OCI_INDEX})
    assert r.status == 201
    r = await setup.client.get("/v2/up/lib/multi/manifests/latest", headers=ACCEPT)
    assert await r.read() == index
    await _pull(setup.client, "up/lib/multi", amd)
    arm_doc, amd_doc = json.loads(arm_raw), json.loads(amd_raw)
    assert setup.faulty.gets(arm) == 0
    assert setup.faulty.gets(amd) == 1
    amd_blobs = {d["digest"] for d in [amd_doc["config"], *amd_doc["layers"]]}
    arm_only = [d["digest"] for d in arm_doc["layers"] if d["digest"] not in amd_blobs]
    assert len(arm_only) == 2
    for digest in arm_only:
        assert setup.faulty.gets(digest) == 0


async def test_pushes_to_a_prefix_are_refused_and_mirror_names_stay_local_for_pushes(setup):
    r = await setup.client.post("/v2/up/lib/app/blobs/uploads/")
    assert r.status == 405
    err = (await r.json())["errors"][0]
    assert err["code"] == "UNSUPPORTED" and "read-only cache of upstream up" in err["message"]
    r = await setup.client.put("/v2/up/lib/app/manifests/x", data=b"{}", headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 405
    # the mirror: an un-prefixed name nobody holds locally comes from the upstream...
    digest, raw = await push_image(setup.upstream, "library/tool", "1")
    got = await _pull(setup.client, "library/tool", "1")
    assert got[:2] == (digest, raw)
    # ...stored once, under the prefix (the mirror is an alias)
    r = await setup.client.get("/v2/_catalog")
    names = (await r.json())["repositories"]
    assert "up/library/tool" in names and "library/tool" not in names
    # a push to an un-prefixed name is local, and then the local repository wins
    local_digest, _ = await push_image(setup.client, "library/tool", "1")
    r = await setup.client.get("/v2/library/tool/manifests/1", headers=ACCEPT)
    assert r.headers["Docker-Content-Digest"] == local_digest != digest


async def test_unknown_upstream_content_is_unknown(setup):
    r = await setup.client.get("/v2/up/lib/none/manifests/1", headers=ACCEPT)
    assert r.status == 404 and (await r.json())["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    r = await setup.client.get("/v2/up/lib/none/blobs/sha256:" + "0" * 64)
    assert r.status == 404 and (await r.json())["errors"][0]["code"] == "BLOB_UNKNOWN"


async def test_dockyards_own_access_rules_apply_to_cached_names(make_setup):
    s = await make_setup(auth={"mode": "basic", "anonymous_pull": ["up/public/*"]})
    await push_image(s.upstream, "public/ok", "1")
    await push_image(s.upstream, "secret/no", "1")
    assert (await s.client.get("/v2/up/public/ok/manifests/1", headers=ACCEPT)).status == 200
    r = await s.client.get("/v2/up/secret/no/manifests/1", headers=ACCEPT)
    assert r.status == 401
    assert s.faulty.gets("/secret/") == 0  # refused before anything was fetched


async def test_the_catalog_marks_cached_repositories_with_their_upstream(setup):
    await push_image(setup.upstream, "lib/shown", "1")
    await _pull(setup.client, "up/lib/shown", "1")
    await push_image(setup.client, "mine/local", "1")
    r = await setup.client.get("/api/v1/repositories")
    assert r.status == 200, await r.text()
    listed = {repo["name"]: repo["upstream"] for repo in (await r.json())["repositories"]}
    assert listed == {"up/lib/shown": "up", "mine/local": None}
    page = await (await setup.client.get("/ui/")).text()
    assert "cache of up" in page


async def test_a_corrupt_upstream_blob_is_cut_short_and_never_stored(setup):
    data = bytes(range(256)) * 4096  # 1 MiB
    digest = await push_blob(setup.upstream, "lib/bad", data)
    setup.faulty.mode = "corrupt"
    r = await setup.client.get(f"/v2/up/lib/bad/blobs/{digest}")
    with pytest.raises(aiohttp.ClientPayloadError):
        await r.read()  # fewer bytes than announced: no client takes this for a whole blob
    from registry import state
    assert await setup.app[state.STORAGE].stat(Digest.parse(digest)) is None
    setup.faulty.mode = "pass"
    r = await setup.client.get(f"/v2/up/lib/bad/blobs/{digest}")
    assert r.status == 200 and await r.read() == data


async def test_a_slow_client_catches_up_from_storage(setup):
    data = os.urandom(12 << 20)  # more than a client queue plus the socket buffers hold
    digest = await push_blob(setup.upstream, "lib/slow", data)
    slow = await setup.client.get(f"/v2/up/lib/slow/blobs/{digest}")
    assert slow.status == 200
    fast = await setup.client.get(f"/v2/up/lib/slow/blobs/{digest}")  # joins late
    assert await fast.read() == data
    from registry.proxy import PROXY
    svc = setup.app[PROXY]
    for _ in range(200):  # the slow client has not read a byte; the fetch finishes anyway
        if not svc.fetches:
            break
        await asyncio.sleep(0.05)
    assert not svc.fetches
    assert await slow.read() == data
    assert setup.faulty.gets(digest) == 1


async def test_bytes_another_cached_repository_brought_are_linked_after_a_head(setup):
    data = os.urandom(100_000)
    digest = await push_blob(setup.upstream, "lib/one", data)
    await push_blob(setup.upstream, "lib/two", data)
    assert await (await setup.client.get(f"/v2/up/lib/one/blobs/{digest}")).read() == data
    await _settled(setup)  # the client has every byte before the cache's commit: wait for it
    setup.faulty.reset_counts()
    assert await (await setup.client.get(f"/v2/up/lib/two/blobs/{digest}")).read() == data
    assert setup.faulty.counts == {("HEAD", f"/v2/lib/two/blobs/{digest}"): 1}
    # a repository the upstream does not have it in gets the upstream's answer, not our bytes
    r = await setup.client.get(f"/v2/up/lib/three/blobs/{digest}")
    assert r.status == 404


async def test_eviction_drops_the_least_recently_pulled_and_gc_frees_the_bytes(setup):
    from registry import state
    from registry.gc import collect
    from registry.proxy import PROXY
    from registry.proxy.eviction import evict

    svc = setup.app[PROXY]
    await push_image(setup.upstream, "lib/old", "1", layers=1)
    await push_image(setup.upstream, "lib/new", "1", layers=1)
    old_blobs = (await _pull(setup.client, "up/lib/old", "1"))[2]
    await _pull(setup.client, "up/lib/new", "1")
    await _settled(setup)
    await svc.cache.queries.touch_pulled("up/lib/old", 1000.0)
    held, _ = await svc.cache.queries.holdings()
    report = await evict(svc, sum(held["up/lib/new"].values()))
    assert report.evicted == ["up/lib/old"]
    names = (await (await setup.client.get("/v2/_catalog")).json())["repositories"]
    assert "up/lib/old" not in names and "up/lib/new" in names
    await collect(setup.app[state.INDEX], setup.app[state.STORAGE], 0)
    layer = Digest.of(old_blobs[1])
    assert await setup.app[state.STORAGE].stat(layer) is None  # freed by the ordinary GC
    # pulled again: fetched again
    setup.faulty.reset_counts()
    await _pull(setup.client, "up/lib/old", "1")
    assert setup.faulty.gets(str(layer)) == 1
    assert (await evict(svc, 10**12)).evicted == []

"""What the cache holds, as the rest of the registry counts it: eviction sizes (each blob once),
the namespace's quota on cache fills (evict or refuse), and references that arrive after the
manifest naming them (an index's platform manifests, an image's layers) recorded so lifecycle
keeps them."""
from __future__ import annotations

import json
import os

from oci import mediatypes as mt
from oci.digest import Digest
from registry import state
from registry.lifecycle import reviews
from registry.lifecycle.quotas import set_quota
from registry.proxy import PROXY
from registry.proxy.eviction import evict
from tests.registry.oci_client import image_manifest, push_blob, push_image
from tests.registry.proxy.test_pull_through import ACCEPT, _pull, _settled


async def _push_with_layers(client, name: str, tag: str, layers: list[bytes]) -> tuple[str, bytes]:
    config = json.dumps({"architecture": "amd64", "os": "linux", "author": os.urandom(4).hex()}).encode()
    for data in [config, *layers]:
        await push_blob(client, name, data)
    raw = image_manifest(config, layers)
    r = await client.put(f"/v2/{name}/manifests/{tag}", data=raw, headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 201, await r.text()
    return r.headers["Docker-Content-Digest"], raw


async def _set_quota(setup, namespace: str, limit: int) -> None:
    from registry.lifecycle import QUOTAS

    await set_quota(setup.app[state.INDEX], namespace, limit)
    setup.app[QUOTAS]._limits = None  # limits are cached for seconds (``quota set`` is another process)


async def _usage(setup, namespace: str) -> int:
    from registry.lifecycle.quotas import usage

    return await setup.app[state.INDEX].db.read(lambda conn: usage(conn, namespace))


async def test_eviction_counts_a_blob_two_cached_repositories_share_once(setup):
    shared = os.urandom(300_000)
    await _push_with_layers(setup.upstream, "lib/a", "1", [shared, os.urandom(1000)])
    await _push_with_layers(setup.upstream, "lib/b", "1", [shared, os.urandom(2000)])
    await _pull(setup.client, "up/lib/a", "1")
    await _pull(setup.client, "up/lib/b", "1")
    await _settled(setup)
    svc = setup.app[PROXY]
    await svc.cache.queries.touch_pulled("up/lib/a", 1000.0)  # the least recently pulled
    held, cached = await svc.cache.queries.holdings()
    assert cached == {"up/lib/a", "up/lib/b"}
    on_disk = sum({d: s for h in held.values() for d, s in h.items()}.values())
    assert on_disk == await _usage(setup, "up")  # what the quota counts, too
    # exactly what is stored fits: nothing goes (counting the shared layer twice evicted one)
    assert (await evict(svc, on_disk)).evicted == []
    # one byte less: the least recently pulled goes, and frees only what it alone held
    report = await evict(svc, on_disk - 1)
    assert report.evicted == ["up/lib/a"]
    alone = sum(s for d, s in held["up/lib/a"].items() if d not in held["up/lib/b"])
    assert report.total_before - report.total_after == alone
    assert report.total_after == sum(held["up/lib/b"].values()) == await _usage(setup, "up")


async def test_a_fill_over_the_namespace_quota_evicts_the_least_recently_pulled(setup):
    await push_image(setup.upstream, "lib/old", "1", layers=1)
    await _pull(setup.client, "up/lib/old", "1")
    await _settled(setup)
    await setup.app[PROXY].cache.queries.touch_pulled("up/lib/old", 1000.0)
    used = await _usage(setup, "up")
    await _set_quota(setup, "up", used + 8_300)
    big = os.urandom(8_000)  # fits alone, not next to lib/old
    digest, _ = await _push_with_layers(setup.upstream, "lib/new", "1", [big])
    _, _, blobs = await _pull(setup.client, "up/lib/new", "1")
    assert blobs[1] == big
    await _settled(setup)
    names = (await (await setup.client.get("/v2/_catalog")).json())["repositories"]
    assert "up/lib/old" not in names and "up/lib/new" in names
    assert await _usage(setup, "up") <= used + 8_300


async def test_a_fill_over_the_namespace_quota_is_refused_when_the_policy_says_so(make_setup):
    setup = await make_setup()
    setup.app[PROXY].settings = type(setup.app[PROXY].settings)(
        setup.app[PROXY].settings.upstreams, "up", 0, "refuse")
    await push_image(setup.upstream, "lib/old", "1", layers=1)
    await _pull(setup.client, "up/lib/old", "1")
    await _settled(setup)
    used = await _usage(setup, "up")
    await _set_quota(setup, "up", used + 8_300)
    big = os.urandom(8_000)
    await _push_with_layers(setup.upstream, "lib/new", "1", [big])
    r = await setup.client.get("/v2/up/lib/new/manifests/1", headers=ACCEPT)
    assert r.status == 200  # the manifest and the config fit
    layer = json.loads(await r.read())["layers"][0]["digest"]
    r = await setup.client.get(f"/v2/up/lib/new/blobs/{layer}")
    assert r.status == 403
    err = (await r.json())["errors"][0]
    assert err["code"] == "DENIED" and "cache fill refused" in err["message"] and err["detail"]["namespace"] == "up"
    await _settled(setup)
    assert await setup.app[state.STORAGE].stat(Digest.parse(layer)) is None  # nothing stored
    names = (await (await setup.client.get("/v2/_catalog")).json())["repositories"]
    assert "up/lib/old" in names  # nothing evicted
    assert await _usage(setup, "up") <= used + 8_300


async def _kept(setup, name: str, child: str) -> tuple[bool, bool]:
    """(the child manifest is kept by lifecycle's rule, its layer is referenced)."""
    from sqlalchemy import select

    from registry.index.models import Repository

    def q(conn):
        rid = conn.execute(select(Repository.id).where(Repository.name == name)).scalar_one()
        return reviews.manifest_is_kept(conn, rid, child)

    return await setup.app[state.INDEX].db.read(q)


async def _referenced(setup, digest: str) -> bool:
    from sqlalchemy import select

    from registry.index.models import ManifestReference

    return await setup.app[state.INDEX].db.read(lambda conn: conn.execute(
        select(ManifestReference.manifest_id).where(ManifestReference.digest == digest)).first() is not None)


async def _push_index(setup) -> tuple[str, str, bytes]:
    amd, amd_raw = await push_image(setup.upstream, "lib/multi", None)
    arm, arm_raw = await push_image(setup.upstream, "lib/multi", None)
    index = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {"mediaType": mt.OCI_MANIFEST, "digest": amd, "size": len(amd_raw), "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": mt.OCI_MANIFEST, "digest": arm, "size": len(arm_raw), "platform": {"os": "linux", "architecture": "arm64"}},
    ]}).encode()
    r = await setup.upstream.put("/v2/lib/multi/manifests/latest", data=index, headers={"Content-Type": mt.OCI_INDEX})
    assert r.status == 201
    return amd, arm, amd_raw


async def test_platform_manifests_and_layers_fetched_later_are_recorded_as_referenced(setup):
    amd, arm, amd_raw = await _push_index(setup)
    r = await setup.client.get("/v2/up/lib/multi/manifests/latest", headers=ACCEPT)
    assert r.status == 200
    await _pull(setup.client, "up/lib/multi", amd)  # the child by digest, then its blobs
    await _settled(setup)
    # the untagged child is kept as the cached index's child (untagged_after would take it)
    assert await _kept(setup, "up/lib/multi", amd)
    layers = [d["digest"] for d in json.loads(amd_raw)["layers"]]
    for digest in layers:
        assert await _referenced(setup, digest)  # the blob review keeps them


async def test_late_references_are_found_after_a_restart_too(setup):
    """The notes of what is still awaited live in memory; without them (a restart) the
    repository's manifests are read to find who names the arrival."""
    amd, arm, amd_raw = await _push_index(setup)
    assert (await setup.client.get("/v2/up/lib/multi/manifests/latest", headers=ACCEPT)).status == 200
    setup.app[PROXY].cache._awaiting.clear()  # what a restart loses
    await _pull(setup.client, "up/lib/multi", amd)
    await _settled(setup)
    assert await _kept(setup, "up/lib/multi", amd)
    for digest in [d["digest"] for d in json.loads(amd_raw)["layers"]]:
        assert await _referenced(setup, digest)

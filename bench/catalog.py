"""Catalog pages and API at registry size: `run(quick) -> rows` for the bench runner.

Seeds 20,000 repositories / 100,000 tags (quick: 500 / 2,500) directly into a fresh index
(bench/catalog_seed.py) — SQLite, and in the full run PostgreSQL too — serves it with `dockyard-registry serve` as a user would, and
times each page with one keep-alive HTTP connection: the median and p95 of N sequential
requests after a warm-up. The issue's target is "well under 100 ms" for the repository page and
a search at 20k/100k; every row says whether it was met.
"""
from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import signal
import statistics
import sys
import subprocess
import tempfile
import time
from pathlib import Path

from bench import catalog_pg
from bench.catalog_seed import repo_name, seed
from bench.procs import free_port, venv_tool, wait_for_port

TARGET_MS = 100.0


def _row(metric: str, samples: list[float], note: str = "") -> dict:
    ms = sorted(s * 1000 for s in samples)
    median = statistics.median(ms)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    verdict = "meets" if p95 < TARGET_MS else "MISSES"
    return {"area": "catalog", "metric": metric, "unit": "ms", "better": "lower", "dockyard": round(median, 2),
            "reference": None, "ref_name": "", "limit": None, "limit_name": "",
            "note": f"p95 {p95:.1f} ms; {verdict} the <{TARGET_MS:.0f} ms target{'; ' + note if note else ''}",
            "samples": {"dockyard": [round(v, 3) for v in ms]}}


def _progress(row: dict) -> None:
    """Each figure as soon as it is measured (a long run that fails later keeps what it had)."""
    print(f"  {row['dockyard']:>9} {row['unit']:<3} {row['metric']}  ({row['note']})", file=sys.stderr, flush=True)


def catalog_pages(first: str, digest: str, deep: int) -> list[tuple[str, str]]:
    """(label, path) of every page the bench times; ``first`` is a repository holding bytes,
    ``digest`` one of its manifests, ``deep`` a page number halfway down the list."""
    return [
        ("home page (stats + first 50 by name)", "/ui/"),
        (f"home page {deep} (OFFSET {(deep - 1) * 50})", f"/ui/?page={deep}"),
        ("search page (substring)", "/ui/?q=service-12"),
        ("search as you type (results fragment)", "/ui/?q=ice-1&fragment=1"),
        ("home sorted by size", "/ui/?sort=size"),
        ("home sorted by tag count, page 3", "/ui/?sort=tags&page=3"),
        ("repository page (tags, platforms, sizes)", f"/ui/r/{first}"),
        ("image page (config, layers, referrers)", f"/ui/r/{first}/-/manifest/{digest}"),
        ("storage per namespace page", "/ui/storage"),
        ("API: OpenAPI document", "/api/v1/openapi.json"),
        ("API: repositories search", "/api/v1/repositories?q=service-12"),
        ("API: tags of a repository", f"/api/v1/repositories/{first}/tags"),
        ("docker search (/v1/search)", "/v1/search?q=service-12&n=25"),
    ]


def _time(conn: http.client.HTTPConnection, path: str, rounds: int) -> list[float]:
    def once() -> float:
        started = time.perf_counter()
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        elapsed = time.perf_counter() - started
        if resp.status != 200 or not body:
            raise RuntimeError(f"GET {path}: {resp.status}")
        return elapsed

    once()  # warm-up: caches, the ranking snapshot
    return [once() for _ in range(rounds)]


def _ustar(name: str) -> bytes:
    h = bytearray(512)
    h[0:len(name)] = name.encode()
    h[100:108], h[108:116], h[116:124] = b"0000644\0", b"0000000\0", b"0000000\0"
    h[124:136], h[136:148], h[156:157], h[257:265] = b"00000000000\0", b"14677133000\0", b"0", b"ustar\x0000"
    h[148:156] = b" " * 8
    h[148:156] = f"{sum(h):06o}\0 ".encode()
    return bytes(h)


def _push_many_files(conn: http.client.HTTPConnection, count: int) -> str:
    """Push an image whose one layer holds ``count`` empty files; the URL of its file list."""
    import gzip
    import hashlib

    layer = gzip.compress(b"".join(_ustar(f"data/d{i % 100:02d}/f-{i:06d}") for i in range(count)) + bytes(1024), 1)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    digests = []
    for blob in (config, layer):
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        conn.request("POST", f"/v2/bench/files/blobs/uploads/?digest={digest}", body=blob,
                     headers={"Content-Type": "application/octet-stream"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 201:
            raise RuntimeError(f"blob push: {resp.status}")
        digests.append(digest)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digests[0],
                                      "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digests[1],
                                       "size": len(layer)}]}).encode()
    conn.request("PUT", "/v2/bench/files/manifests/v1", body=manifest,
                 headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    resp = conn.getresponse()
    resp.read()
    if resp.status != 201:
        raise RuntimeError(f"manifest push: {resp.status}")
    return f"/api/v1/repositories/bench/files/manifests/v1/layers/{digests[1]}/files"


async def _seed(url: str, data_dir: Path, repos: int, tags: int) -> tuple[dict, float]:
    from sqlalchemy import text

    from registry.index import Index

    index = Index(url)
    try:
        await index.migrate()
        started = time.monotonic()
        counts = await seed(index, repos, tags, storage_root=data_dir, with_bytes=100)
        if index.db.dialect == "postgresql":  # what autovacuum would do after a bulk load: planner
            # statistics, and a visibility map so counts are index-only scans
            async with index.engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("VACUUM ANALYZE"))
                for table in ("repositories", "manifests"):  # rows were inserted with their ids:
                    await conn.execute(text(  # move the sequences past them, or the next push collides
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
        return counts, time.monotonic() - started
    finally:
        await index.close()


def _measure(backend: str, url: str | None, scratch: Path, repos: int, tags: int, rounds: int) -> list[dict]:
    data_dir = scratch / backend
    data_dir.mkdir()
    url = url or f"sqlite+aiosqlite:///{data_dir / 'index.db'}"
    counts, seed_s = asyncio.run(_seed(url, data_dir, repos, tags))
    port = free_port()
    proc: subprocess.Popen | None = None
    try:
        with open(scratch / f"registry-{backend}.log", "wb") as log:
            proc = subprocess.Popen([venv_tool("dockyard-registry"), "serve", "--listen", f"127.0.0.1:{port}",
                                     "--data-dir", str(data_dir), "--database-url", url],
                                    stdout=log, stderr=subprocess.STDOUT,
                                    env=dict(os.environ, DOCKYARD_REGISTRY_LOG_LEVEL="WARNING"))
        wait_for_port(port, proc, timeout=60)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        scale = f"{counts['repositories']} repos / {counts['tags']} tags, {backend}"

        started = time.perf_counter()
        conn.request("GET", "/api/v1/repositories?sort=size")  # waits for the ranking snapshot
        conn.getresponse().read()
        ranking_s = time.perf_counter() - started

        first = repo_name(0)  # the seeder stored bytes for the first repositories by name
        conn.request("GET", f"/api/v1/repositories/{first}/tags")
        digest = json.loads(conn.getresponse().read())["tags"][0]["digest"]
        deep = max(1, counts["repositories"] // 50 // 2)
        pages = catalog_pages(first, digest, deep)
        rows = []
        for label, path in pages:
            rows.append(_row(f"{label} @ {scale}", _time(conn, path, rounds)))
            _progress(rows[-1])
        layer_url = _push_many_files(conn, 100_000)
        rows.append(_row(f"layer file list, first page of a 100,000-file layer @ {backend}", _time(conn, layer_url, rounds),
                         "streamed from the gzip blob, 200 entries"))
        _progress(rows[-1])
        conn.close()
        rows.append({"area": "catalog", "metric": f"ranking snapshot build (aggregate sorts, stats) @ {scale}",
                     "unit": "ms", "better": "lower", "dockyard": round(ranking_s * 1000, 1), "reference": None,
                     "ref_name": "", "limit": None, "limit_name": "",
                     "note": "at start and after writes, throttled; pages serve the previous snapshot meanwhile",
                     "samples": {}})
        rows.append({"area": "catalog", "metric": f"seed the index directly @ {scale}", "unit": "s",
                     "better": "lower", "dockyard": round(seed_s, 1), "reference": None, "ref_name": "",
                     "limit": None, "limit_name": "", "note": f"{counts}", "samples": {}})
        return rows
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run(quick: bool) -> list[dict]:
    """SQLite always; PostgreSQL too in the full run when a private server can be started."""
    repos, tags, rounds = (500, 2_500, 15) if quick else (20_000, 100_000, 60)
    scratch = Path(tempfile.mkdtemp(prefix="dy-catalog-bench-"))
    try:
        rows = _measure("sqlite", None, scratch, repos, tags, rounds)
        if quick:
            return rows
        reason = catalog_pg.available()
        if reason is not None:
            return rows + [{"area": "catalog", "metric": "catalog pages @ postgresql", "unit": "ms", "better": "lower",
                            "dockyard": None, "reference": None, "ref_name": "", "limit": None, "limit_name": "",
                            "note": f"n/a (not available: {reason})", "samples": {}}]
        with catalog_pg.private_postgres() as url:
            return rows + _measure("postgresql", url, scratch, repos, tags, rounds)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    for r in run("--quick" in sys.argv):
        print(f"{r['dockyard']:>9} {r['unit']:<3} {r['metric']}  ({r['note']})")

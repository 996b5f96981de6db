"""Catalog pages and API at registry size: `run(quick) -> rows` for the bench runner.

Seeds 20,000 repositories / 100,000 tags (quick: 500 / 2,500) directly into a fresh SQLite
index (bench/catalog_seed.py), serves it with `dockyard-registry serve` as a user would, and
times each page with one keep-alive HTTP connection: the median and p95 of N sequential
requests after a warm-up. The issue's target is "well under 100 ms" for the repository page and
a search at 20k/100k; every row says whether it was met.
"""
from __future__ import annotations

import asyncio
import http.client
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

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


async def _seed(data_dir: Path, repos: int, tags: int) -> tuple[dict, float]:
    from registry.index import Index

    index = Index(f"sqlite+aiosqlite:///{data_dir / 'index.db'}")
    try:
        await index.migrate()
        started = time.monotonic()
        counts = await seed(index, repos, tags, storage_root=data_dir, with_bytes=100)
        return counts, time.monotonic() - started
    finally:
        await index.close()


def run(quick: bool) -> list[dict]:
    repos, tags, rounds = (500, 2_500, 15) if quick else (20_000, 100_000, 60)
    scratch = Path(tempfile.mkdtemp(prefix="dy-catalog-bench-"))
    proc: subprocess.Popen | None = None
    try:
        data_dir = scratch / "data"
        data_dir.mkdir()
        counts, seed_s = asyncio.run(_seed(data_dir, repos, tags))
        port = free_port()
        log = open(scratch / "registry.log", "wb")
        proc = subprocess.Popen([venv_tool("dockyard-registry"), "serve", "--listen", f"127.0.0.1:{port}",
                                 "--data-dir", str(data_dir)], stdout=log, stderr=subprocess.STDOUT,
                                env=dict(os.environ, DOCKYARD_REGISTRY_LOG_LEVEL="WARNING"))
        wait_for_port(port, proc, timeout=60)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        scale = f"{counts['repositories']} repositories / {counts['tags']} tags"

        started = time.perf_counter()
        conn.request("GET", "/api/v1/repositories?sort=size")  # builds the ranking snapshot
        conn.getresponse().read()
        ranking_s = time.perf_counter() - started

        first = repo_name(0)  # the seeder stored bytes for the first repositories by name
        conn.request("GET", f"/api/v1/repositories/{first}/tags")
        resp = conn.getresponse()
        import json

        digest = json.loads(resp.read())["tags"][0]["digest"]
        deep = max(1, counts["repositories"] // 50 // 2)
        pages = [
            ("home page (stats + first 50 by name)", "/ui/"),
            (f"home page {deep} (OFFSET {(deep - 1) * 50})", f"/ui/?page={deep}"),
            ("search page (substring)", "/ui/?q=service-12"),
            ("search as you type (results fragment)", "/ui/?q=ice-1&fragment=1"),
            ("home sorted by size", "/ui/?sort=size"),
            ("home sorted by tag count, page 3", "/ui/?sort=tags&page=3"),
            ("repository page (tags, platforms, sizes)", f"/ui/r/{first}"),
            ("image page (config, layers, referrers)", f"/ui/r/{first}/-/manifest/{digest}"),
            ("API: repositories search", "/api/v1/repositories?q=service-12"),
            ("API: tags of a repository", f"/api/v1/repositories/{first}/tags"),
            ("docker search (/v1/search)", "/v1/search?q=service-12&n=25"),
        ]
        rows = [_row(f"{label} @ {scale}", _time(conn, path, rounds)) for label, path in pages]
        conn.close()
        rows.append({"area": "catalog", "metric": f"ranking snapshot build (aggregate sorts, stats) @ {scale}",
                     "unit": "ms", "better": "lower", "dockyard": round(ranking_s * 1000, 1), "reference": None,
                     "ref_name": "", "limit": None, "limit_name": "",
                     "note": "once per write burst; pages serve the previous snapshot while it rebuilds",
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
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    import sys

    for r in run("--quick" in sys.argv):
        print(f"{r['dockyard']:>9} {r['unit']:<3} {r['metric']}  ({r['note']})")

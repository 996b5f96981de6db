"""Runs Debian's `wrk` with a Lua script that sets the Accept header and prints JSON at the end.

wrk measures latency with its own coordinated-omission-free timer per connection; the script's
`done` hook reports requests/s, p50 and p99 (ms) and the error counts.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

SCRIPT = """\
wrk.method = "GET"
wrk.headers["Accept"] = "%s"
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
                 + summary.errors.status + summary.errors.timeout
  io.write(string.format('WRKJSON {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, "errors": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), errors))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def run(url: str, accept: str, connections: int = 64, threads: int = 2, seconds: float = 10) -> dict:
    """Returns {"rps", "p50_ms", "p99_ms", "errors", "requests"}."""
    assert url.startswith("http://127."), "benchmarks only talk to loopback"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(SCRIPT % accept.replace('"', ''))
        script = f.name
    try:
        out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
                              "--timeout", "10s", "-s", script, url],
                             capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    finally:
        Path(script).unlink(missing_ok=True)
    line = next(l for l in out.splitlines() if l.startswith("WRKJSON "))
    data = json.loads(line[len("WRKJSON "):])
    secs = data["duration_us"] / 1e6
    return {"rps": data["requests"] / secs, "p50_ms": data["p50_us"] / 1000, "p99_ms": data["p99_us"] / 1000,
            "errors": data["errors"], "requests": data["requests"]}

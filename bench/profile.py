"""Profile Dockyard's registry under one benchmark workload with py-spy (pip install -e '.[bench]').

    python -m bench.profile small-pushes|manifest-puts|idle|pull|push|manifest-get|tags-list [--seconds N] [--top N]

Starts dockyard-registry (same settings as the bench), attaches `py-spy record --format raw`
to it, drives the workload with the bench's own client, then prints the hottest functions:
self time (where the CPU is) and inclusive time (what it is spent under), as % of samples.
The raw collapsed stacks are kept next to the report for flame graphs (bench/results/profiles/).
"""
from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from bench import loadgen, servers, wrk
from bench.oci_http import MANIFEST_ACCEPT, Client, file_digest, tiny_image
from bench.procs import REPO, VENV_BIN, Processes, Scratch

WORKLOADS = ("small-pushes", "manifest-puts", "idle", "pull", "push", "manifest-get", "tags-list")


def _py_spy() -> str:
    found = VENV_BIN / "py-spy"
    if found.exists():
        return str(found)
    if shutil.which("py-spy"):
        return "py-spy"
    raise SystemExit("py-spy is not installed: pip install -e '.[bench]'")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _package(frame: str) -> str:
    """'f (sqlalchemy/engine/base.py:12)' -> 'sqlalchemy'; stdlib modules by their file name."""
    where = frame.rpartition("(")[2].rstrip(")").rpartition(":")[0]
    parts = where.split("/")
    return parts[0] if len(parts) > 1 else (where or "?")


def summarize(raw: Path, top: int) -> str:
    """Self and inclusive % per function from py-spy's collapsed stacks ("f1;f2;f3 COUNT")."""
    self_count: collections.Counter = collections.Counter()
    incl_count: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [f.strip() for f in stack.split(";") if f.strip()]
        total += n
        if frames:
            self_count[frames[-1]] += n
        for frame in set(frames):
            incl_count[frame] += n
    if not total:
        return "no samples"
    by_package: collections.Counter = collections.Counter()
    for frame, n in self_count.items():
        by_package[_package(frame)] += n
    lines = [f"{total} samples", "", "self %  package"]
    lines += [f"{100 * c / total:6.1f}  {p}" for p, c in by_package.most_common(12)]
    lines += ["", "self %  function (file:line)"]
    lines += [f"{100 * c / total:6.1f}  {f}" for f, c in self_count.most_common(top)]
    lines += ["", "incl %  function (file:line)"]
    lines += [f"{100 * c / total:6.1f}  {f}" for f, c in incl_count.most_common(top * 2)]
    return "\n".join(lines)


def drive(workload: str, port: int, seconds: float, scratch: Scratch) -> None:
    client = Client(port)
    if workload == "small-pushes":
        loadgen.small_pushes_per_s(port, 8, seconds)
    elif workload == "manifest-puts":
        loadgen.manifest_puts_per_s(port, 8, seconds)
    elif workload == "idle":
        time.sleep(seconds)
    elif workload == "tags-list":
        loadgen.many_tags(port, "bench/tags", 2000)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            client.get_json_pages("/v2/bench/tags/tags/list")
    elif workload == "manifest-get":
        tiny_image(client, "bench/manifest", "v1")
        wrk.run(f"http://127.0.0.1:{port}/v2/bench/manifest/manifests/v1", MANIFEST_ACCEPT, seconds=seconds)
    else:
        blob = scratch.root / "blob.bin"
        with open(blob, "wb") as f:
            for _ in range(256):
                f.write(os.urandom(1 << 20))
        digest = file_digest(blob)
        client.push_file("bench/big", blob, digest)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if workload == "pull":
                client.pull_blob("bench/big", digest)
            else:
                with open(blob, "r+b") as f:
                    f.write(os.urandom(32))
                digest = file_digest(blob)
                client.push_file("bench/big", blob, digest)
    client.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--gil", action="store_true", help="only samples holding the GIL (Python CPU time)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "profiles")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    raw = args.out / f"registry-{args.workload}{'-gil' if args.gil else ''}.txt"
    procs, scratch = Processes(), Scratch()
    try:
        server = servers.start_dockyard_registry(procs, scratch.dir("registry"))
        spy = subprocess.Popen([_py_spy(), "record", "--pid", str(server.pid), "--rate", "250", "--format", "raw",
                                "--output", str(raw), "--nonblocking"] + (["--gil"] if args.gil else []),
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
        time.sleep(1.0)  # let py-spy attach before the load starts
        cpu_before, wall_before = _cpu_seconds(server.pid), time.monotonic()
        drive(args.workload, server.port, args.seconds, scratch)
        busy = (_cpu_seconds(server.pid) - cpu_before) / (time.monotonic() - wall_before)
        os.kill(spy.pid, signal.SIGINT)  # py-spy writes its output on SIGINT
        spy.wait(60)
    finally:
        procs.stop_all()
        scratch.close()
    print(f"server CPU during the workload: {100 * busy:.0f}% of one core (utime+stime, all threads)")
    print(summarize(raw, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Profile a Dockyard replica on S3 (SeaweedFS + PostgreSQL, as bench/s3_bench.py runs it).

    python -m bench.s3_profile pull|small-pushes|push|replica-pushes [--seconds N] [--gil] [--weed]

Starts ``weed mini``, a private PostgreSQL and one ``dockyard-registry serve`` on the bucket,
attaches ``py-spy record`` to the replica (``--weed``: also prints the CPU the S3 server used),
drives the workload with the bench's own clients and prints the replica's CPU use and hottest
functions (bench/profile.py's summary). Raw stacks: bench/results/profiles/s3-WORKLOAD.txt.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

from bench import catalog_pg, loadgen, s3_servers
from bench.oci_http import Client, file_digest
from bench.procs import REPO, Processes, Scratch
from bench.profile import _cpu_seconds, _py_spy, summarize

WORKLOADS = ("pull", "small-pushes", "push", "replica-pushes")
MiB = 1 << 20


def _blob(path: Path, size: int) -> str:
    with open(path, "wb") as f:
        for _ in range(size // MiB):
            f.write(os.urandom(MiB))
    return file_digest(path)


def drive(workload: str, port: int, seconds: float, work: Path, started) -> int:
    """Runs the workload for about ``seconds`` after calling ``started()`` (set-up done);
    returns the bytes or pushes it moved."""
    if workload == "small-pushes":
        started()
        return int(loadgen.small_pushes_per_s(port, 8, seconds) * seconds)
    client = Client(port)
    blob = work / "blob.bin"
    digest = _blob(blob, 256 * MiB)
    if workload == "pull":
        client.push_file("bench/big", blob, digest)
    moved = 0
    started()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if workload == "pull":
            moved += client.pull_blob("bench/big", digest)
        elif workload == "push":
            with open(blob, "r+b") as f:
                f.write(os.urandom(32))
            digest = file_digest(blob)
            client.push_file("bench/big", blob, digest, chunk=256 * MiB)
            moved += 256 * MiB
        else:
            moved += _three_pushes(port, work)
    client.close()
    return moved


def _three_pushes(port: int, work: Path) -> int:
    paths = [work / f"r{i}.bin" for i in range(3)]
    digests = [_blob(p, 64 * MiB) for p in paths]

    def one(i: int) -> None:
        c = Client(port)
        try:
            c.push_file(f"bench/r{i}", paths[i], digests[i], chunk=64 * MiB)
        finally:
            c.close()

    async def all_three() -> None:
        await asyncio.gather(*(asyncio.to_thread(one, i) for i in range(3)))

    asyncio.run(all_three())
    return 3 * 64 * MiB


def compare(workload: str, rounds: int, seconds: float, work: Path, procs: Processes, store, env,
            mib: int = 256) -> str:
    """Dockyard and distribution on the same SeaweedFS, alternating rounds: medians and ratio."""
    from bench.alternate import alternate

    started = {"dockyard": s3_servers.start_replica(procs, work / "dy1", env),
               "distribution": s3_servers.start_distribution_s3(procs, work / "dist", store, "distribution")}
    ports = {side: port for side, (port, _) in started.items()}
    cpu: dict[str, list[float]] = {side: [0.0, 0.0, 0.0] for side in ports}   # server s, weed s, units
    blob = work / "blob.bin"
    digest = _blob(blob, mib * MiB) if workload == "pull" else ""
    clients = {side: Client(port) for side, port in ports.items()}
    if workload == "pull":
        for c in clients.values():
            c.push_file("bench/big", blob, digest)

    def measure(side: str, _round: int) -> float:
        pids = (started[side][1].pid, store.proc.pid)
        before = [_cpu_seconds(p) for p in pids]
        if workload == "small-pushes":
            rate = loadgen.small_pushes_per_s(ports[side], 8, seconds)
            units = rate * seconds
        else:
            start = time.perf_counter()
            n = sum(clients[side].pull_blob("bench/big", digest) for _ in range(max(2, 512 // mib)))
            rate, units = n / 1e6 / (time.perf_counter() - start), n / 1e9
        for i, p in enumerate(pids):
            cpu[side][i] += _cpu_seconds(p) - before[i]
        cpu[side][2] += units
        return rate

    res = alternate(list(ports), rounds, measure)
    d, r = res.med("dockyard"), res.med("distribution")
    unit = "push" if workload == "small-pushes" else "GB"
    per = "; ".join(f"{side}: {1000 * c[0] / c[2]:.0f} ms CPU per {unit} in the registry, {1000 * c[1] / c[2]:.0f} in weed"
                    for side, c in cpu.items())
    samples = {side: [round(v, 1) for v in vals] for side, vals in res.values.items()}
    return (f"{workload}: dockyard {d:.1f}, distribution {r:.1f}, ratio {d / r:.2f} (samples {samples}); {per}; "
            f"load {os.getloadavg()[0]:.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.s3_profile")
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--gil", action="store_true", help="only samples holding the GIL (Python CPU time)")
    parser.add_argument("--no-spy", action="store_true", help="measure only (no py-spy attached)")
    parser.add_argument("--distribution", action="store_true",
                        help="drive distribution 2.8.2's s3 driver on the same SeaweedFS instead (no py-spy)")
    parser.add_argument("--compare", type=int, metavar="ROUNDS",
                        help="no profile: alternate Dockyard and distribution for ROUNDS rounds (pull, small-pushes)")
    parser.add_argument("--mib", type=int, default=256, help="blob size of --compare pull, MiB")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "profiles")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    raw = args.out / f"s3-{args.workload}{'-gil' if args.gil else ''}.txt"
    procs, scratch = Processes(), Scratch()
    work = scratch.dir("s3")
    try:
        store = s3_servers.start_seaweedfs(procs, work / "weed", ["dockyard", "distribution"])
        with catalog_pg.private_postgres() as database_url:
            env = s3_servers.dockyard_env(store, "dockyard", database_url)
            s3_servers.migrate(env)
            if args.compare:
                print(compare(args.workload, args.compare, args.seconds, work, procs, store, env, args.mib))
                return 0
            if args.distribution:
                port, server = s3_servers.start_distribution_s3(procs, work / "dist", store, "dockyard")
            else:
                port, server = s3_servers.start_replica(procs, work / "dy1", env)
            spy = None
            if not args.no_spy and not args.distribution:
                spy = subprocess.Popen([_py_spy(), "record", "--pid", str(server.pid), "--rate", "250", "--format",
                                        "raw", "--output", str(raw), "--nonblocking"] + (["--gil"] if args.gil else []),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                time.sleep(1.0)
            cpu: dict[int, float] = {}

            def started() -> None:
                cpu.update({p.pid: _cpu_seconds(p.pid) for p in (server, store.proc)})
                cpu[0] = time.monotonic()

            moved = drive(args.workload, port, args.seconds, work, started)
            wall = time.monotonic() - cpu.pop(0)
            busy = {pid: (_cpu_seconds(pid) - c) / wall for pid, c in cpu.items()}
            if spy is not None:
                os.kill(spy.pid, signal.SIGINT)
                spy.wait(60)
            procs.stop_all()
    finally:
        procs.stop_all()
        scratch.close()
    rate = f"{moved / wall:.1f} pushes/s" if args.workload == "small-pushes" else f"{moved / wall / 1e6:.0f} MB/s"
    print(f"{args.workload}: {rate} over {wall:.1f} s; CPU (% of one core): server {100 * busy[server.pid]:.0f}, "
          f"weed {100 * busy[store.proc.pid]:.0f}; load {os.getloadavg()[0]:.1f}")
    if spy is not None:
        print(summarize(raw, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Just the manifest-GET row of 3 replicas vs 1 (bench/s3_bench.py's ``_replicas``), in ~1 minute.

    python -m bench.s3_replicas [--rounds 3] [--seconds 8] [--connections 64] [--direct]
                                [--baseline OTHER_CHECKOUT] [--profile RAW]

Starts SeaweedFS, a private PostgreSQL, three replicas on one bucket and database, and two
nginx (deploy/scale/nginx.conf's settings, as the full bench does): one in front of the first
replica, one in front of all three. Alternates wrk rounds of ``GET /v2/.../manifests/v1`` between
the two and prints req/s per round with the CPU seconds per 1,000 requests that the replicas,
PostgreSQL and nginx used (read from /proc), and the load average. ``--direct`` adds a side with
wrk straight at one replica (no nginx), to separate nginx's cost from the replicas';
``--baseline`` runs 1 and 3 more replicas on another checkout's code (before/after, same rounds).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import time
from pathlib import Path

from bench import catalog_pg, s3_servers, wrk
from bench.alternate import alternate
from bench.oci_http import MANIFEST_ACCEPT, Client, tiny_image
from bench.procs import Processes, Scratch
from bench.profile import _cpu_seconds, _py_spy, summarize


def _postgres_pids(database_url: str) -> list[int]:
    """PIDs of the private PostgreSQL's processes (its postmaster and backends)."""
    port = database_url.rsplit(":", 1)[-1].split("/")[0]
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith(str(catalog_pg.PG_BIN / "postgres")) and f"-p {port} " in cmd:
            pids += _tree(int(entry))  # the postmaster and its backends
    return pids


def _cpu(pid: int) -> float:
    try:
        return _cpu_seconds(pid)
    except (OSError, IndexError, ValueError):
        return 0.0  # exited meanwhile


def _tree(pid: int) -> list[int]:
    """``pid`` and its children (nginx workers, PostgreSQL backends), one level is enough here."""
    out = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def _profile(pid: int, port: int, args) -> None:
    spy = subprocess.Popen([_py_spy(), "record", "--pid", str(pid), "--rate", "250", "--format", "raw",
                            "--output", str(args.profile), "--nonblocking", "--gil"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    wrk.run(f"http://127.0.0.1:{port}/v2/bench/rmanifest/manifests/v1", MANIFEST_ACCEPT,
            connections=args.connections, seconds=args.seconds)
    os.kill(spy.pid, signal.SIGINT)  # py-spy writes its output on SIGINT
    spy.wait(60)
    print(summarize(args.profile, 30), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.s3_replicas")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--direct", action="store_true", help="also wrk straight at one replica")
    parser.add_argument("--baseline", type=Path, metavar="TREE",
                        help="also 1 and 3 replicas running the code of another checkout (PYTHONPATH=TREE), "
                             "alternated with this one's in the same rounds")
    parser.add_argument("--profile", type=Path, metavar="RAW",
                        help="first, one wrk run straight at one replica with py-spy attached (--gil); "
                             "collapsed stacks to RAW, hottest functions printed")
    args = parser.parse_args()
    procs, scratch = Processes(), Scratch()
    work = scratch.dir("s3r")
    try:
        store = s3_servers.start_seaweedfs(procs, work / "weed", ["dockyard"])
        with catalog_pg.private_postgres() as database_url:
            env = s3_servers.dockyard_env(store, "dockyard", database_url)
            s3_servers.migrate(env)
            reps = [s3_servers.start_replica(procs, work / f"rep{i}", env) for i in range(3)]
            ports = [p for p, _ in reps]
            one = s3_servers.start_nginx(procs, work / "nginx1", ports[:1])
            three = s3_servers.start_nginx(procs, work / "nginx3", ports)
            front = {"3 replicas": (three[0], [r[1].pid for r in reps], _tree(three[1].pid)),
                     "1 replica": (one[0], [reps[0][1].pid], _tree(one[1].pid))}
            if args.direct:
                front["direct, 1 replica"] = (ports[0], [reps[0][1].pid], [])
            if args.baseline:
                base_env = dict(env, PYTHONPATH=str(args.baseline.resolve()))
                base = [s3_servers.start_replica(procs, work / f"base{i}", base_env) for i in range(3)]
                b1 = s3_servers.start_nginx(procs, work / "bnginx1", [base[0][0]])
                b3 = s3_servers.start_nginx(procs, work / "bnginx3", [p for p, _ in base])
                front["3 replicas @base"] = (b3[0], [r[1].pid for r in base], _tree(b3[1].pid))
                front["1 replica @base"] = (b1[0], [base[0][1].pid], _tree(b1[1].pid))
            c = Client(three[0])
            tiny_image(c, "bench/rmanifest", "v1")
            c.close()
            pg = _postgres_pids(database_url)
            lines = []

            def measure(side: str, rnd: int) -> float:
                port, replicas, nginx = front[side]
                pg_now = _postgres_pids(database_url) or pg
                groups = {"replicas": replicas, "postgres": pg_now, "nginx": nginx}
                before = {g: sum(_cpu(p) for p in pids) for g, pids in groups.items()}
                res = wrk.run(f"http://127.0.0.1:{port}/v2/bench/rmanifest/manifests/v1", MANIFEST_ACCEPT,
                              connections=args.connections, seconds=args.seconds)
                per_k = {g: 1000 * (sum(_cpu(p) for p in groups[g]) - before[g]) / max(1, res["requests"])
                         for g in groups}
                lines.append(f"round {rnd} {side:>18}: {res['rps']:7.0f} req/s p50 {res['p50_ms']:.1f} ms "
                             f"p99 {res['p99_ms']:.1f} ms errors {res['errors']}; CPU s per 1k req: "
                             + ", ".join(f"{g} {v:.2f}" for g, v in per_k.items())
                             + f"; load {' '.join(open('/proc/loadavg').read().split()[:3])}")
                print(lines[-1], flush=True)
                return res["rps"]

            time.sleep(1.0)
            if args.profile:
                _profile(reps[0][1].pid, ports[0], args)
            res = alternate(list(front), args.rounds, measure)
            meds = {side: res.med(side) for side in front}
            print("medians: " + ", ".join(f"{s} {v:.0f}" for s, v in meds.items() if v)
                  + f"; 3 vs 1: {meds['3 replicas'] / meds['1 replica']:.2f}"
                  + (f"; @base 3 vs 1: {meds['3 replicas @base'] / meds['1 replica @base']:.2f}"
                     if args.baseline else ""))
    finally:
        procs.stop_all()
        scratch.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

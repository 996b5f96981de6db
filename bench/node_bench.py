"""Dockyard's node agent against the Docker engine (and runc/crun, see bench.bundles).

One reference registry (distribution 2.8.2) serves both clients the same images, so the
registry is not what differs. dockerd runs privately (own socket, data root, exec root, no
iptables, no bridge) and is stopped by PID at the end. Dockyard uses a fresh --root per pull
round; Docker removes the image (`docker rmi`) after each pull. The pull, memory and
`--network none` rows use --network none on both sides; the default-network and published-port
rows (bench/node_network.py) use a second dockerd that has docker's bridge, in a namespace of its own.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from bench import bundles, hyper, images, node_network, servers
from bench.alternate import Results, alternate, log, pair_row
from bench.oci_http import Client
from bench.plan import Plan, size_label
from bench.procs import Processes, Scratch, descendants, parent_pid, pss_kib, status_kib, venv_tool
from bench.rows import Row, row, unavailable

AREA = "node"
DY, DOCKER = "dockyard", "docker"
MB = 1e6


class Agent:
    """`dockyard --root ROOT ...` as a subprocess."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = dict(os.environ, DOCKYARD_CGROUP_PARENT=bundles.CGROUP_PARENT)

    def argv(self, *args: str) -> list[str]:
        return [venv_tool("dockyard"), "--root", str(self.root), *args]

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        res = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout, env=self.env,
                             stdin=subprocess.DEVNULL)
        if check and res.returncode != 0:
            raise RuntimeError(f"dockyard {' '.join(args)} -> {res.returncode}: {res.stderr.strip()[-300:]}")
        return res

    def has(self, command: str) -> bool:
        return self.run(command, "--help", check=False).returncode == 0


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _max_rss_kib(argv: list[str], env: dict | None = None) -> int:
    """Peak RSS of one command: its VmHWM, polled every 2 ms until it exits (the last value read).
    Not wait4's ru_maxrss: Linux keeps that across execve, so a child forked from this (big)
    Python process would report the bench's own size. stderr goes to a file, not a pipe, so a
    detached monitor left behind cannot hold our read end open."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, env=env)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, status_kib(proc.pid, "VmHWM") or 0)
            time.sleep(0.002)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {err.read().decode()[-300:]}")
    return peak


def run(plan: Plan, scratch: Scratch, procs: Processes) -> list[Row]:
    out: list[Row] = []
    out += bundles.run(plan, scratch.dir("bundles"))
    work = scratch.dir("node")
    log("node: images and the registry that serves them")
    registry = servers.start_distribution(procs, scratch.dir("node-registry"))
    client = Client(registry.port)
    base = f"127.0.0.1:{registry.port}"
    busybox_ref, big_ref = f"{base}/bench/busybox:1", f"{base}/bench/big:1"
    images.push_image(client, "bench/busybox", "1", [images.busybox_layer(work)], ["sh"])
    layers = [images.random_layer(work, i, plan.image_layer_size) for i in range(5)]
    images.push_image(client, "bench/big", "1", layers, ["sh"])
    total = sum(l.size for l in layers)
    for layer in layers:
        layer.path.unlink()

    docker_error = ""
    try:
        docker = servers.start_dockerd(procs, scratch.dir("dockerd"))
    except Exception as e:  # noqa: BLE001
        docker, docker_error = None, f"dockerd did not start: {e}"
        log(docker_error)
    agent_root = work / "agent"
    agent = Agent(agent_root)
    dy_error = "" if agent.has("pull") else "`dockyard pull` is not built yet"
    dy_run_error = dy_error or ("" if agent.has("run") else "`dockyard run` is not built yet")

    try:
        out += _pull_rows(plan, client, docker, docker_error, agent, dy_error, work, big_ref, total, len(layers))
        out += _run_rows(plan, docker, docker_error, agent, dy_run_error, busybox_ref)
        out += node_network.rows(plan, agent, docker, docker_error, dy_run_error, busybox_ref, procs, work)
        out += _memory_rows(plan, docker, docker_error, agent, dy_run_error, busybox_ref)
        out += _listing_rows(plan, client, base, work, docker, docker_error, dy_run_error)
        from bench.node_commit import commit_rows
        out += commit_rows(plan, busybox_ref, work, agent, dy_run_error, docker, docker_error)
    finally:
        client.close()
        if docker is not None:
            procs.stop(docker.proc, timeout=60)
        bundles.remove_cgroups(servers.DOCKER_CGROUP_PARENT)
        bundles.remove_cgroups()
    return out


def _sides(dy_error: str, docker_error: str) -> tuple[list[str], Results]:
    res = Results()
    if dy_error:
        res.errors[DY] = dy_error
    if docker_error:
        res.errors[DOCKER] = docker_error
    return [s for s in (DY, DOCKER) if s not in res.errors], res


def _merge(res: Results, pre: Results) -> Results:
    res.errors = {**pre.errors, **res.errors}
    return res


def _pull_rows(plan, client, docker, docker_error, agent, dy_error, work, ref, total, n_layers) -> list[Row]:
    label = f"pull {n_layers}-layer image ({total / MB:.0f} MB, random content) from a local registry"
    sides, pre = _sides(dy_error, docker_error)
    rounds = iter(range(1 << 30))

    def measure(side, _round):
        if side == DY:
            root = work / f"pull-root-{next(rounds)}"
            try:
                return _timed(lambda: Agent(root).run("pull", "--quiet", ref))
            finally:
                subprocess.run(["rm", "-rf", str(root)])
        elapsed = _timed(lambda: docker.run("pull", "--quiet", ref))
        docker.run("rmi", ref)
        return elapsed

    log("node: pull")
    res = _merge(alternate(sides, plan.rounds, measure), pre)

    def fetch_all():
        manifest = json.loads(client.request("GET", "/v2/bench/big/manifests/1", headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json"}).read())
        for layer in manifest["layers"]:
            client.pull_blob("bench/big", layer["digest"])
    floor = min(_timed(fetch_all) for _ in range(2))
    return [pair_row(AREA, label, "s", "lower", res, DY, DOCKER, "docker 20.10", limit=floor,
                     limit_name="sequential download of the layers by the bench client",
                     note="dockyard: fresh --root per round; docker: rmi after each pull")]


def _run_rows(plan, docker, docker_error, agent, dy_error, ref) -> list[Row]:
    metric = "run --rm --network none IMG /bin/true, start to exit"
    if not hyper.available():
        return [unavailable(AREA, metric, "ms", "lower", "hyperfine is not installed")]
    sides, pre = _sides(dy_error, docker_error)
    cmds = {}
    try:
        if DY in sides:
            agent.run("pull", "--quiet", ref)
            cmds[DY] = agent.argv("run", "--rm", "--network", "none", ref, "true")
        if DOCKER in sides:
            docker.run("pull", "--quiet", ref)
            cmds[DOCKER] = docker.argv("run", "--rm", "--network", "none", ref, "true")
    except Exception as e:  # noqa: BLE001
        pre.errors.setdefault(DY if DY not in cmds else DOCKER, str(e))
    log("node: run --rm true")
    res = alternate([s for s in sides if s in cmds], plan.rounds,
                    lambda side, _r: hyper.median_ms({side: cmds[side]}, plan.run_runs, warmup=1,
                                                     env=agent.env)[side])
    return [pair_row(AREA, metric, "ms", "lower", _merge(res, pre), DY, DOCKER, "docker 20.10 + runc",
                     note=f"hyperfine -N, {plan.run_runs} runs per round")]


def _memory_rows(plan, docker, docker_error, agent, dy_error, ref) -> list[Row]:
    log("node: memory per running container")
    sides, pre = _sides(dy_error, docker_error)
    per_container = Results()
    cli_peak = Results()
    daemons = None
    per_container.errors = dict(pre.errors)
    cli_peak.errors = dict(pre.errors)
    for side in sides:
        names = [f"bench-mem-{i}" for i in range(plan.containers)]
        try:
            argv = (agent.argv if side == DY else docker.argv)
            peaks, pss = [], []
            for name in names:
                peaks.append(_max_rss_kib(argv("run", "-d", "--name", name, "--network", "none", ref,
                                               "sleep", "600"), env=agent.env))
            for name in names:
                info = json.loads((agent.run if side == DY else docker.run)("inspect", name).stdout)[0]
                init = int(info["State"]["Pid"])
                monitor = parent_pid(init)
                pss.append((pss_kib(monitor) or 0) / 1024)
            per_container.values[side] = pss
            cli_peak.values[side] = [p / 1024 for p in peaks]
            if side == DOCKER:
                daemon_pids = [docker.proc.pid] + descendants(docker.proc.pid)
                daemons = sum((pss_kib(p) or 0) for p in daemon_pids if _comm(p) in ("dockerd", "containerd")) / 1024
        except Exception as e:  # noqa: BLE001
            per_container.errors[side] = cli_peak.errors[side] = f"{e.__class__.__name__}: {e}"[:300]
        finally:
            for name in names:
                (agent.run if side == DY else docker.run)("rm", "-f", name, check=False)
    rows = [
        pair_row(AREA, "memory per running container: monitor (dockyard) vs containerd-shim (docker)", "MiB",
                 "lower", per_container, DY, DOCKER, "containerd-shim-runc-v2",
                 note="PSS of the container init's parent process, median over the running containers"),
        pair_row(AREA, "agent command peak RSS: `dockyard run -d` vs `docker run -d` (CLI)", "MiB", "lower",
                 cli_peak, DY, DOCKER, "docker CLI 20.10", note="VmHWM of the command, polled every 2 ms"),
    ]
    if daemons is not None:
        rows.append(row(AREA, f"resident daemons with {plan.containers} containers running", "MiB", "lower",
                        0.0 if DY not in per_container.errors else None, daemons, ref_name="dockerd + containerd",
                        note="Dockyard runs no daemon: the agent exits, one monitor stays per container"))
    return rows


def _listing_rows(plan, client, base, work, docker, docker_error, dy_error) -> list[Row]:
    """`ps` / `images` with plan.listed containers and images, in a root of their own."""
    from bench.node_listing import listing_rows
    return listing_rows(plan, plan.listed, client, base, work, Agent(work / "listing-root"), dy_error,
                        docker, docker_error)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""

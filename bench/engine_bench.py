"""`dockyard engine` against dockerd, both driven by the same docker CLI over a unix socket.

The metric is what a user of the docker CLI waits for: `docker run --rm --network none IMG
true`, start to exit (create, attach, wait, start, the exit, the removal), measured by hyperfine
alternating the two sockets. Both engines pull the same busybox image from one reference
registry first; dockerd is the private one of bench.servers (own socket, data root, no iptables,
no bridge) and `dockyard engine` gets its own --root and socket in the scratch dir. Everything
is stopped by PID at the end.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from bench import bundles, hyper, images, servers
from bench.alternate import Results, alternate, log, pair_row
from bench.oci_http import Client
from bench.plan import Plan
from bench.procs import Processes, Scratch, venv_tool, wait_for_path
from bench.rows import Row, unavailable

AREA = "engine"
DY, DOCKER = "dockyard engine", "dockerd"
METRIC = "docker run --rm --network none IMG true through the engine's socket, start to exit"


def _docker(sock: Path, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    res = subprocess.run(["docker", "-H", f"unix://{sock}", *args], capture_output=True, text=True,
                         timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {res.stderr.strip()[-300:]}")
    return res


def _start_engine(procs: Processes, work: Path, env: dict) -> Path:
    sock = work / "engine.sock"
    proc = procs.start([venv_tool("dockyard"), "--root", str(work / "root"), "engine", "-H", f"unix://{sock}"],
                       work / "engine.log", env=env)
    wait_for_path(sock, proc)
    for _ in range(200):
        try:
            _docker(sock, "version", env=env, timeout=10)
            return sock
        except RuntimeError:
            if proc.poll() is not None:
                break
            import time
            time.sleep(0.1)
    raise RuntimeError(f"dockyard engine did not answer: see {work / 'engine.log'}")


def run(plan: Plan, scratch: Scratch, procs: Processes) -> list[Row]:
    if not hyper.available():
        return [unavailable(AREA, METRIC, "ms", "lower", "hyperfine is not installed")]
    work = scratch.dir("engine")
    registry = servers.start_distribution(procs, scratch.dir("engine-registry"))
    client = Client(registry.port)
    ref = f"127.0.0.1:{registry.port}/bench/busybox:1"
    images.push_image(client, "bench/busybox", "1", [images.busybox_layer(work)], ["sh"])
    client.close()
    env = dict(os.environ, DOCKYARD_CGROUP_PARENT=bundles.CGROUP_PARENT, DOCKER_CONFIG=str(work / "client"),
               DOCKER_CLI_HINTS="false")
    res = Results()
    cmds: dict[str, list[str]] = {}
    docker = None
    try:
        try:
            sock = _start_engine(procs, work, env)
            _docker(sock, "pull", "--quiet", ref, env=env)
            cmds[DY] = ["docker", "-H", f"unix://{sock}", "run", "--rm", "--network", "none", ref, "true"]
        except Exception as e:  # noqa: BLE001
            res.errors[DY] = str(e)
        try:
            docker = servers.start_dockerd(procs, scratch.dir("engine-dockerd"))
            docker.run("pull", "--quiet", ref)
            cmds[DOCKER] = docker.argv("run", "--rm", "--network", "none", ref, "true")
        except Exception as e:  # noqa: BLE001
            res.errors[DOCKER] = str(e)
        log("engine: docker run --rm true through each socket")
        measured = alternate(list(cmds), plan.rounds,
                             lambda side, _r: hyper.median_ms({side: cmds[side]}, plan.run_runs, warmup=1,
                                                              env=env)[side])
        measured.errors = {**res.errors, **measured.errors}
        return [pair_row(AREA, METRIC, "ms", "lower", measured, DY, DOCKER, "dockerd + containerd + runc",
                         note=f"the same docker CLI for both; hyperfine -N, {plan.run_runs} runs per round")]
    finally:
        if docker is not None:
            procs.stop(docker.proc, timeout=60)
        bundles.remove_cgroups(servers.DOCKER_CGROUP_PARENT)
        bundles.remove_cgroups()

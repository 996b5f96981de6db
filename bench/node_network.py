"""The node rows with networking: `run --rm IMG true` on the default network, and `run -d -p H:80
IMG httpd` to the first HTTP 200 on H, Dockyard against a Docker engine that has its bridge.

The reference is a second, private dockerd started in a network namespace of its own
(`unshare --net`), with docker's defaults for networking: its bridge (docker0 inside that
namespace, on 10.213.7.0/24), iptables NAT and the userland proxy for published ports. So both
sides do the same work per container — a veth pair, an address, NAT for a published port — and
whatever dockerd puts in the kernel (bridge, iptables chains, forward policy) goes with its
namespace when it stops: the host's firewall is never touched. The busybox image is copied into
it from the first dockerd (`docker save | docker load`: it cannot reach the host's loopback
registry). The HTTP probe for the docker side runs in a thread that joined that namespace
(setns is per thread), for Dockyard in a thread in the host's; both poll the same way.
"""
from __future__ import annotations

import ctypes
import http.client
import os
import subprocess
import threading
import time
from pathlib import Path

from bench import hyper
from bench.alternate import alternate, log, pair_row
from bench.procs import Processes, free_port
from bench.rows import Row, unavailable
from bench.servers import DOCKER_CGROUP_PARENT, Dockerd, await_dockerd

AREA = "node"
DY, DOCKER = "dockyard", "docker"
BRIDGE_CIDR = "10.213.7.1/24"
CLONE_NEWNET = 0x40000000


def start_bridged_dockerd(procs: Processes, work: Path) -> Dockerd:
    """dockerd with docker's default networking, alone in a new network namespace."""
    work.mkdir(parents=True, exist_ok=True)
    sock = work / "docker.sock"
    (work / "daemon.json").write_text("{}")
    dockerd = " ".join([
        "exec dockerd", "--config-file", str(work / "daemon.json"), "--bip", BRIDGE_CIDR,
        "--data-root", str(work / "data"), "--exec-root", str(work / "exec"),
        "--pidfile", str(work / "docker.pid"), "-H", f"unix://{sock}", "--log-level", "error",
        "--cgroup-parent", DOCKER_CGROUP_PARENT])
    proc = procs.start(["unshare", "--net", "sh", "-c", f"ip link set lo up && {dockerd}"],
                       work / "dockerd.log", env=dict(os.environ, DOCKER_CONFIG=str(work / "client")))
    return await_dockerd(proc, sock, work, "the bridged dockerd")


def copy_image(source: Dockerd, target: Dockerd, ref: str) -> None:
    save = subprocess.Popen(source.argv("save", ref), stdout=subprocess.PIPE)
    load = subprocess.run(target.argv("load"), stdin=save.stdout, capture_output=True, text=True)
    save.stdout.close()
    if save.wait() != 0 or load.returncode != 0:
        raise RuntimeError(f"docker save | docker load: {load.stderr.strip()[-300:]}")


def _in_netns(netns: str | None, fn):
    """fn() in a thread of its own, inside the network namespace file ``netns`` if given."""
    result: dict = {}

    def body() -> None:
        try:
            if netns:
                fd = os.open(netns, os.O_RDONLY)
                try:
                    if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns")
                finally:
                    os.close(fd)
            result["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised by the caller
            result["error"] = e
    worker = threading.Thread(target=body)
    worker.start()
    worker.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def _first_200(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/hostname")
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.002)
    raise TimeoutError(f"no HTTP 200 on 127.0.0.1:{port}")


def rows(plan, agent, docker: Dockerd | None, docker_error: str, dy_error: str, ref: str,
         procs: Processes, work: Path) -> list[Row]:
    metric_run = "run --rm IMG /bin/true on the default (bridge) network, start to exit"
    metric_http = "run -d -p H:80 IMG httpd, start to the first HTTP 200 on H"
    bridged, error = None, docker_error
    if not error:
        try:
            bridged = start_bridged_dockerd(procs, work / "dockerd-bridge")
            copy_image(docker, bridged, ref)
        except Exception as e:  # noqa: BLE001
            error = f"bridged dockerd: {e}"[:300]
            log(error)
    try:
        return [_run_row(plan, agent, bridged, error, dy_error, ref, metric_run),
                _http_row(plan, agent, bridged, error, dy_error, ref, metric_http)]
    finally:
        if bridged is not None:
            procs.stop(bridged.proc, timeout=60)


def _sides(dy_error: str, docker_error: str):
    from bench.alternate import Results
    res = Results()
    if dy_error:
        res.errors[DY] = dy_error
    if docker_error:
        res.errors[DOCKER] = docker_error
    return [s for s in (DY, DOCKER) if s not in res.errors], res


def _merge(res, pre):
    res.errors = {**pre.errors, **res.errors}
    return res


def _run_row(plan, agent, bridged, docker_error, dy_error, ref, metric) -> Row:
    if not hyper.available():
        return unavailable(AREA, metric, "ms", "lower", "hyperfine is not installed")
    sides, pre = _sides(dy_error, docker_error)
    cmds = {DY: agent.argv("run", "--rm", ref, "true")}
    if bridged is not None:
        cmds[DOCKER] = bridged.argv("run", "--rm", ref, "true")
    log("node: run --rm true on the default network")
    res = alternate([s for s in sides if s in cmds], plan.rounds,
                    lambda side, _r: hyper.median_ms({side: cmds[side]}, plan.run_runs, warmup=1,
                                                     env=agent.env)[side])
    return pair_row(AREA, metric, "ms", "lower", _merge(res, pre), DY, DOCKER,
                    "docker 20.10 + runc, docker0 bridge + iptables",
                    note=f"hyperfine -N, {plan.run_runs} runs per round; docker's bridge exists "
                         "before and after (docker0); so is Dockyard's default bridge (kept while idle)")


def _http_row(plan, agent, bridged, docker_error, dy_error, ref, metric) -> Row:
    sides, pre = _sides(dy_error, docker_error)
    netns = f"/proc/{bridged.proc.pid}/ns/net" if bridged is not None else None
    runs = max(3, plan.run_runs // 4)

    def once(side: str, name: str) -> float:
        port = free_port()
        argv = (agent.argv if side == DY else bridged.argv)(
            "run", "-d", "--name", name, "-p", f"{port}:80", ref, "httpd", "-f", "-p", "80", "-h", "/etc")
        start = time.monotonic()
        started = subprocess.run(argv, capture_output=True, text=True, env=agent.env, timeout=120)
        if started.returncode != 0:
            raise RuntimeError(f"{side} run -d -p: {started.stderr.strip()[-300:]}")
        _in_netns(netns if side == DOCKER else None, lambda: _first_200(port, start + 60))
        return (time.monotonic() - start) * 1000

    def measure(side: str, r: int) -> float:
        times = []
        for i in range(runs):
            name = f"bench-http-{r}-{i}"
            try:
                times.append(once(side, name))
            finally:
                (agent.run if side == DY else bridged.run)("rm", "-f", name, check=False)
        return sorted(times)[len(times) // 2]

    log("node: run -d -p H:80 httpd to the first HTTP 200")
    res = alternate(sides, plan.rounds, measure)
    return pair_row(AREA, metric, "ms", "lower", _merge(res, pre), DY, DOCKER,
                    "docker 20.10 + runc, docker-proxy + iptables DNAT",
                    note=f"median of {runs} per round; probe GET /hostname every 2 ms on 127.0.0.1:H "
                         "(docker's from inside its namespace)")


def main() -> int:
    """These two rows alone (`python -m bench.node_network [--quick]`): a registry with the
    busybox image, the plain dockerd to pull it, the bridged one, a fresh agent root. Prints the
    rows as JSON; everything is stopped and removed (the agent's networks purged) at the end."""
    import json
    import sys

    from bench import images, servers
    from bench.node_bench import Agent
    from bench.oci_http import Client
    from bench.plan import for_mode
    from bench.procs import Scratch
    plan = for_mode("--quick" in sys.argv)
    scratch, procs = Scratch(), Processes()
    try:
        work = scratch.dir("node")
        registry = servers.start_distribution(procs, scratch.dir("node-registry"))
        ref = f"127.0.0.1:{registry.port}/bench/busybox:1"
        images.push_image(Client(registry.port), "bench/busybox", "1", [images.busybox_layer(work)], ["sh"])
        docker = servers.start_dockerd(procs, scratch.dir("dockerd"))
        docker.run("pull", "--quiet", ref)
        agent = Agent(work / "agent")
        agent.run("pull", "--quiet", ref)
        print(json.dumps(rows(plan, agent, docker, "", "", ref, procs, work), indent=1))
    finally:
        procs.stop_all()
        scratch.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

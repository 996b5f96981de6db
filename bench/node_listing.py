"""`dockyard ps` and `dockyard images` against `docker ps` / `docker images` with the same counts.

Both sides pull the same N images (one repository, N tags, each its own config over the busybox
layer) from the bench's distribution and run N detached containers (`sleep`, --network none),
so `ps` lists N running containers and `images` N rows. hyperfine then times each listing
command, the two sides alternating round by round. `python -m bench.node_listing` sets up the
same state and prints the paths, for profiling by hand.
"""
from __future__ import annotations

import subprocess

from bench import hyper, images
from bench.alternate import Results, alternate, log, pair_row
from bench.rows import Row, unavailable

AREA = "node"
DY, DOCKER = "dockyard", "docker"
REPO_NAME = "bench/listed"


def push_listed_images(client, count: int, work) -> list[str]:
    """N images in one repository: the busybox layer under N configs (a Cmd each)."""
    layer = images.busybox_layer(work)
    tags = []
    for i in range(count):
        images.push_image(client, REPO_NAME, f"v{i}", [layer], ["sleep", str(3600 + i)])
        tags.append(f"v{i}")
    layer.path.unlink()
    return tags


def populate(run, base: str, tags: list[str], prefix: str, names: list[str] | None = None) -> list[str]:
    """Pull every tag, then start one detached container per tag; returns the container names
    (also appended to ``names`` as they start, for the clean-up of a half-done set-up).
    ``run(*args)`` is `dockyard --root R` or `docker -H SOCK` as a checked call."""
    refs = [f"{base}/{REPO_NAME}:{t}" for t in tags]
    for ref in refs:
        run("pull", "--quiet", ref)
    names = [] if names is None else names
    for i, ref in enumerate(refs):
        name = f"{prefix}-{i}"
        names.append(name)
        run("run", "-d", "--name", name, "--network", "none", ref)
    return names


def listing_rows(plan, count: int, client, base: str, work, agent, dy_error: str, docker,
                 docker_error: str) -> list[Row]:
    metrics = {"ps": f"`ps` with {count} running containers", "images": f"`images` with {count} images"}
    if not hyper.available():
        return [unavailable(AREA, m, "ms", "lower", "hyperfine is not installed") for m in metrics.values()]
    errors = {s: e for s, e in ((DY, dy_error), (DOCKER, docker_error)) if e}
    made: dict[str, list[str]] = {}
    tags: list[str] = []
    log(f"node: {count} images and {count} containers on each side for ps/images")
    try:
        tags = push_listed_images(client, count, work)
        for side, run in ((DY, agent.run), (DOCKER, docker.run if docker else None)):
            if side in errors:
                continue
            try:
                made[side] = []
                populate(run, base, tags, "bench-ls", made[side])
            except Exception as e:  # noqa: BLE001 - that side becomes n/a
                errors[side] = f"{e.__class__.__name__}: {e}"[:300]
        argv = {DY: agent.argv, DOCKER: docker.argv if docker else None}
        sides = [s for s in (DY, DOCKER) if s not in errors]
        out = []
        for command, metric in metrics.items():
            log(f"node: {command}")
            res = alternate(sides, plan.rounds, lambda side, _r: hyper.median_ms(
                {side: argv[side](command)}, plan.run_runs, warmup=2, env=agent.env)[side])
            res.errors = {**errors, **res.errors}
            out.append(pair_row(AREA, metric, "ms", "lower", res, DY, DOCKER, "docker CLI 20.10 + dockerd",
                                note=f"hyperfine -N, {plan.run_runs} runs per round; output to a pipe"))
        return out
    finally:
        for side, names in made.items():
            run = agent.run if side == DY else docker.run
            for name in names:
                run("rm", "-f", name, check=False)
        if DOCKER in made:
            for tag in tags:
                docker.run("rmi", f"{base}/{REPO_NAME}:{tag}", check=False)


def _main() -> int:
    """Set up N images and N running containers in a fresh --root for profiling by hand."""
    import argparse
    import os
    from pathlib import Path

    from bench import servers
    from bench.node_bench import Agent
    from bench.oci_http import Client
    from bench.procs import Processes

    parser = argparse.ArgumentParser(prog="python -m bench.node_listing")
    parser.add_argument("work", type=Path, help="an empty directory to hold the registry and the root")
    parser.add_argument("--count", type=int, default=50)
    args = parser.parse_args()
    procs = Processes()
    registry = servers.start_distribution(procs, args.work / "registry")
    client = Client(registry.port)
    base = f"127.0.0.1:{registry.port}"
    agent = Agent(args.work / "root")
    try:
        populate(agent.run, base, push_listed_images(client, args.count, args.work), "prof")
    finally:
        client.close()
        procs.stop_all()
    print(f"root: {agent.root} (remove with: dockyard --root {agent.root} rm -f $(dockyard --root "
          f"{agent.root} ps -aq)); registry stopped; pid {os.getpid()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())

"""`dockyard build` against docker's BuildKit (Debian's docker.io 20.10 client and daemon,
DOCKER_BUILDKIT=1; its classic builder when that client is missing), the same Dockerfiles and
contexts in one run.

Both start from the same busybox image, pulled from one local registry (distribution 2.8.2)
before any timing. RUN steps use --network none on both sides, so no network set-up is timed.
Rows, each the median of the rounds:
  cold   `build --no-cache` of a 10-step Dockerfile (4 RUN, 2 COPY, ENV, WORKDIR, LABEL, CMD)
         over a context of many small files and one larger one;
  warm   the same build again with nothing changed (every step a cache hit);
  edit   after changing one small file the second COPY reads (rebuilds from there on);
  multi  `build --no-cache` of a 3-stage Dockerfile whose target needs 2 stages.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from bench import images, servers
from bench.alternate import alternate, log, pair_row
from bench.oci_http import Client
from bench.plan import Plan
from bench.procs import Processes, Scratch, venv_tool
from bench.rows import Row

AREA = "build"
DY, DOCKER = "dockyard", "docker"
DEBIAN_DOCKER = "/usr/bin/docker"

TEN_STEPS = """FROM {base}
ENV APP=/app
WORKDIR /app
COPY files/ /app/files/
RUN mkdir -p /out && cp -r /app/files /out/copy
RUN for i in 1 2 3 4 5 6 7 8; do echo $i > /out/n$i; done
COPY big.bin small.txt /app/
RUN cat /app/small.txt > /out/small && wc -c /app/big.bin > /out/size
RUN rm -r /out/copy
LABEL bench=build
CMD ["cat", "/out/small"]
"""
MULTI = """FROM {base} AS build
COPY files/ /src/
RUN tar -cf /src.tar /src
FROM {base} AS unused
RUN sleep 2
FROM {base}
COPY --from=build /src.tar /
RUN tar -tf /src.tar | wc -l > /count
"""


def _context(work: Path, n_files: int, big: int) -> Path:
    ctx = work / "ctx"
    (ctx / "files").mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        (ctx / "files" / f"f{i:04d}.txt").write_bytes(os.urandom(2048))
    (ctx / "big.bin").write_bytes(os.urandom(big))
    (ctx / "small.txt").write_text("small\n")
    return ctx


def _timed(argv: list[str], env: dict) -> float:
    start = time.perf_counter()
    res = subprocess.run(argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=600)
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... -> {res.returncode}: {(res.stderr or res.stdout)[-300:]}")
    return elapsed


def _compile_bytecode() -> None:
    """Byte-compile node/ and oci/ as an installed package would be: an editable install under
    PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module on every `dockyard` start,
    ~0.3 s that no real install pays (docker's Go client has no such cost)."""
    import compileall
    from bench.procs import REPO
    for pkg in ("node", "oci"):
        compileall.compile_dir(str(REPO / pkg), quiet=1)


def run(plan: Plan, scratch: Scratch, procs: Processes) -> list[Row]:
    _compile_bytecode()
    work = scratch.dir("build")
    registry = servers.start_distribution(procs, scratch.dir("build-registry"))
    client = Client(registry.port)
    base = f"127.0.0.1:{registry.port}/bench/busybox:1"
    try:
        images.push_image(client, "bench/busybox", "1", [images.busybox_layer(work)], ["sh"])
    finally:
        client.close()
    ctx = _context(work, 50 if plan.quick else 400, (2 if plan.quick else 32) << 20)
    (ctx / "Dockerfile").write_text(TEN_STEPS.format(base=base))
    (ctx / "multi.Dockerfile").write_text(MULTI.format(base=base))

    dy_env = dict(os.environ, DOCKYARD_CGROUP_PARENT=f"dockyard-bench-build-{os.getpid()}")
    dy_env.pop("SOURCE_DATE_EPOCH", None)
    root = work / "root"

    def dy(*args: str) -> list[str]:
        return [venv_tool("dockyard"), "--root", str(root), *args]

    errors: dict[str, str] = {}
    docker = None
    try:
        docker = servers.start_dockerd(procs, scratch.dir("build-dockerd"))
    except Exception as e:  # noqa: BLE001
        errors[DOCKER] = f"dockerd did not start: {e}"
    buildkit = os.path.exists(DEBIAN_DOCKER)
    ref_name = "docker 20.10 BuildKit" if buildkit else "docker 20.10 classic builder"
    d_env = dict(os.environ, DOCKER_BUILDKIT="1" if buildkit else "0")

    def dk(*args: str) -> list[str]:
        return [DEBIAN_DOCKER if buildkit else "docker", "-H", f"unix://{docker.socket}", *args]

    try:
        if docker is not None:
            docker.run("pull", "--quiet", base)
        subprocess.run(dy("pull", "--quiet", base), env=dy_env, check=True, capture_output=True)
    except Exception as e:  # noqa: BLE001
        errors.setdefault(DY if docker is not None else DOCKER, f"pulling the base failed: {e}")
    sides = [s for s in (DY, DOCKER) if s not in errors]

    def build(side: str, *extra: str, dockerfile: str = "Dockerfile") -> float:
        args = ["build", "--network", "none", "-q", "-f", str(ctx / dockerfile), "-t", "bench-build:1", *extra, str(ctx)]
        return _timed(dy(*args) if side == DY else dk(*args), dy_env if side == DY else d_env)

    rows: list[Row] = []
    try:
        log("build: cold (--no-cache)")
        cold = alternate(sides, plan.rounds, lambda side, _r: build(side, "--no-cache"))
        cold.errors.update(errors)
        rows.append(pair_row(AREA, "build 10-step Dockerfile, cold (--no-cache)", "s", "lower", cold, DY, DOCKER,
                             ref_name, note="target: no slower than docker"))
        log("build: warm (fully cached)")
        warm = alternate(sides, 3 if plan.quick else 5, lambda side, _r: build(side))  # short: more rounds
        warm.errors.update(errors)
        rows.append(pair_row(AREA, "build 10-step Dockerfile, fully cached rebuild", "s", "lower", warm, DY, DOCKER,
                             ref_name, note="target: under 0.5x docker's time"))
        counter = iter(range(1 << 30))

        def edit(side: str, _r: int) -> float:
            (ctx / "small.txt").write_text(f"edit {next(counter)}\n")
            return build(side)
        log("build: one file changed")
        edited = alternate(sides, plan.rounds, edit)
        edited.errors.update(errors)
        rows.append(pair_row(AREA, "build 10-step Dockerfile, one copied file changed", "s", "lower", edited, DY,
                             DOCKER, ref_name, note="rebuilds from the second COPY on"))
        log("build: multi-stage")
        multi = alternate(sides, plan.rounds, lambda side, _r: build(side, "--no-cache", dockerfile="multi.Dockerfile"))
        multi.errors.update(errors)
        rows.append(pair_row(AREA, "build 3-stage Dockerfile (target needs 2), cold", "s", "lower", multi, DY, DOCKER,
                             ref_name, note="the classic builder also builds the unused stage" if not buildkit else ""))
    finally:
        if docker is not None:
            procs.stop(docker.proc, timeout=60)
        subprocess.run(dy("builder", "prune", "-f"), env=dy_env, capture_output=True)
    return rows

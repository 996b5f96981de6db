"""`dockyard commit` and `dockyard import` against `docker commit` / `docker import`.

Both sides run the same busybox image (pulled from the bench's distribution); each round a new
container writes CHANGE_MIB of random bytes (one file, so the differ's per-file cost is not
what is measured) and is committed while it runs (paused, both sides' default); then the
container's filesystem, exported once by docker, is imported. Wall time per command, the two
sides alternating round by round.
"""
from __future__ import annotations

import time

from bench.alternate import alternate, log, pair_row
from bench.rows import Row, unavailable

AREA = "node"
DY, DOCKER = "dockyard", "docker"
CHANGE_MIB, QUICK_CHANGE_MIB = 32, 2  # quick (CI smoke) mode only checks that the rows are made


def _wait_ready(run, name: str) -> None:
    for _ in range(600):
        if run("exec", name, "test", "-e", "/ready", check=False).returncode == 0:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{name}: the change was never written")


def commit_rows(plan, busybox_ref: str, work, agent, dy_error: str, docker, docker_error: str) -> list[Row]:
    mib = QUICK_CHANGE_MIB if plan.quick else CHANGE_MIB
    script = f"head -c {mib << 20} /dev/urandom > /blob; touch /ready; sleep 600"
    metric_commit = f"`commit` of a running container with a {mib} MiB change"
    metric_import = "`import` of that container's exported filesystem"
    errors = {s: e for s, e in ((DY, dy_error), (DOCKER, docker_error)) if e}
    if DY not in errors and not agent.has("commit"):
        errors[DY] = "`dockyard commit` is not built yet"
    if len(errors) == 2:
        return [unavailable(AREA, m, "s", "lower", "; ".join(errors.values())) for m in (metric_commit, metric_import)]
    runs = {DY: agent.run, DOCKER: docker.run if docker else None}
    made: dict[str, list[str]] = {DY: [], DOCKER: []}
    images: dict[str, list[str]] = {DY: [], DOCKER: []}
    tarball = work / "commit-bench-export.tar"
    log(f"node: commit / import ({mib} MiB)")

    def commit_once(side: str, r: int) -> float:
        run = runs[side]
        name, tag = f"bench-commit-{r}", f"bench-committed:{r}"
        made[side].append(name)
        run("run", "-d", "--name", name, "--network", "none", busybox_ref, "sh", "-c", script)
        _wait_ready(run, name)
        start = time.perf_counter()
        run("commit", name, tag)
        took = time.perf_counter() - start
        images[side].append(tag)
        if side == DOCKER and not tarball.exists():
            run("export", "-o", str(tarball), name)
        run("rm", "-f", name, check=False)
        return took

    def import_once(side: str, r: int) -> float:
        tag = f"bench-imported:{r}"
        start = time.perf_counter()
        runs[side]("import", str(tarball), tag)
        took = time.perf_counter() - start
        images[side].append(tag)
        return took

    try:
        for side in (DY, DOCKER):
            if side not in errors:
                try:
                    runs[side]("pull", "--quiet", busybox_ref)
                except Exception as e:  # noqa: BLE001 - that side becomes n/a
                    errors[side] = f"{e.__class__.__name__}: {e}"[:300]
        sides = [s for s in (DY, DOCKER) if s not in errors]
        out = []
        res = alternate(sides, plan.rounds, commit_once)
        res.errors = {**errors, **res.errors}
        out.append(pair_row(AREA, metric_commit, "s", "lower", res, DY, DOCKER, "dockerd 20.10 (overlay2)",
                            note="wall time of the CLI command, the container paused during it"))
        if not tarball.exists():
            out.append(unavailable(AREA, metric_import, "s", "lower", "no export from docker to import"))
            return out
        res = alternate(sides, plan.rounds, import_once)
        res.errors = {**errors, **res.errors}
        out.append(pair_row(AREA, metric_import, "s", "lower", res, DY, DOCKER, "dockerd 20.10 (overlay2)",
                            note=f"a plain tar of {tarball.stat().st_size >> 20} MiB (`docker export`)"))
        return out
    finally:
        for side, run in runs.items():
            if run is None:
                continue
            for name in made[side]:
                run("rm", "-f", name, check=False)
            if images[side]:
                run("rmi", *images[side], check=False)
        tarball.unlink(missing_ok=True)

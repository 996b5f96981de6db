"""The same OCI bundle run by Dockyard's built-in runtime, by runc and by crun: `/bin/true` from
start to exit, timed by hyperfine.

The bundle is `runc spec`'s default (namespaces: pid, net, ipc, uts, mount; Docker-like masked
and read-only paths, capabilities) with `/bin/true` as the process, no terminal, and a
cgroupsPath so that all three runtimes create and remove a cgroup. crun runs through
`unshare -m sh -c 'umount /sys/fs/cgroup/unified; exec crun ...'` (Debian's crun 1.8 refuses this
machine's hybrid cgroup layout), which adds an unshare and a shell to its time.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from bench import hyper, images
from bench.alternate import Results, alternate, log, median, pair_row
from bench.plan import Plan
from bench.procs import REPO, python
from bench.rows import Row, row, unavailable

AREA = "node"
CGROUP_PARENT = f"dockyard-bench-{os.getpid()}"


def _version(tool: str) -> str:
    res = subprocess.run([tool, "--version"], capture_output=True, text=True)
    return " ".join(res.stdout.split()[:3:2]) if res.returncode == 0 else tool


def make_bundle(work: Path) -> Path:
    bundle = work / "bundle"
    bundle.mkdir(parents=True)
    images.unpack_busybox_rootfs(bundle / "rootfs")
    subprocess.run(["runc", "spec"], cwd=bundle, check=True, capture_output=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/true"]
    spec["root"]["readonly"] = True
    spec["linux"]["cgroupsPath"] = f"/{CGROUP_PARENT}/rt"
    (bundle / "config.json").write_text(json.dumps(spec, indent=1))
    return bundle


def remove_cgroups(name: str = CGROUP_PARENT) -> None:
    """The per-run cgroups go with each container; remove their (empty) parent in every hierarchy."""
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        parent = hierarchy / name
        if hierarchy.is_symlink() or not parent.is_dir():
            continue
        for dirpath, _dirs, _files in os.walk(parent, topdown=False):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def commands(bundle: Path, state: Path) -> dict[str, list[str]]:
    # the built-in runtime's own one-shot command (node/runtime/command.py: `-I -S`, run by path;
    # it puts the checkout on sys.path itself), as the monitor's shim is started
    cmds = {"builtin": [python(), "-I", "-S", str(REPO / "node" / "runtime" / "command.py"), "run",
                        "--bundle", str(bundle), "bench-builtin"],
            # the floors: the kernel's part (new namespaces + fork/exec), and an interpreter start
            "unshare": ["unshare", "--mount", "--pid", "--net", "--ipc", "--uts", "--fork", "/bin/true"],
            "python": [python(), "-c", "pass"]}
    if shutil.which("runc"):
        cmds["runc"] = ["runc", "--root", str(state / "runc"), "run", "--bundle", str(bundle), "bench-runc"]
    if shutil.which("crun"):
        crun = f"crun --root {state / 'crun'} run --bundle {bundle} bench-crun"
        cmds["crun"] = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                        f"umount /sys/fs/cgroup/unified 2>/dev/null; exec {crun}"]
    return cmds


def in_process_ms(bundle: Path, runs: int, env: dict) -> float:
    res = subprocess.run([python(), "-m", "bench.builtin_run", "--loop", str(runs), str(bundle), "bench-inproc"],
                         capture_output=True, text=True, env=env, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(f"builtin_run --loop: {res.stderr.strip()[-300:]}")
    return float(res.stdout.strip().splitlines()[-1])


def run(plan: Plan, work: Path) -> list[Row]:
    metric = "OCI bundle /bin/true start to exit, builtin runtime vs {}"
    if os.geteuid() != 0:
        return [unavailable(AREA, metric.format(r), "ms", "lower", "needs root") for r in ("runc", "crun")]
    if not hyper.available():
        return [unavailable(AREA, metric.format(r), "ms", "lower", "hyperfine is not installed")
                for r in ("runc", "crun")]
    log("node: builtin runtime vs runc vs crun on one bundle")
    bundle = make_bundle(work)
    cmds = commands(bundle, work / "state")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    try:
        return _rows(plan, bundle, cmds, env)
    finally:
        remove_cgroups()


def _rows(plan: Plan, bundle: Path, cmds: dict, env: dict) -> list[Row]:
    metric = "OCI bundle /bin/true start to exit, builtin runtime vs {}"
    names = list(cmds)
    res = alternate(["all"], plan.rounds, lambda _s, r: hyper.median_ms(
        {n: cmds[n] for n in (names if r % 2 == 0 else names[::-1])}, plan.run_runs, warmup=2, env=env))
    out = []
    for ref in ("runc", "crun"):
        if ref not in cmds:
            out.append(unavailable(AREA, metric.format(ref), "ms", "lower", f"{ref} is not installed"))
            continue
        values = res.values.get("all", [])
        pair = Results()
        pair.values = {"builtin": [v["builtin"] for v in values], ref: [v[ref] for v in values]}
        if "all" in res.errors:
            pair.errors = {"builtin": res.errors["all"]}
        note = ("hyperfine -N; builtin = `python -I -S node/runtime/command.py run --bundle B ID` "
                "(interpreter start-up included)")
        if ref == "crun":
            note += "; crun wrapped in unshare -m + sh (hybrid cgroup layout)"
        floor = median(v["unshare"] for v in values)
        out.append(pair_row(AREA, metric.format(ref), "ms", "lower", pair, "builtin", ref, _version(ref),
                            note=note, limit=floor, limit_name="unshare -mpniu -f /bin/true"))
    pair = Results()
    pair.values = {"runc": [v["runc"] for v in res.values.get("all", []) if "runc" in v]}
    try:
        pair.values["inproc"] = [in_process_ms(bundle, plan.run_runs, env)]
    except Exception as e:  # noqa: BLE001
        pair.errors["inproc"] = str(e)
    out.append(pair_row(AREA, "OCI bundle /bin/true, builtin runtime in-process (as the agent calls it) vs runc",
                        "ms", "lower", pair, "inproc", "runc", _version("runc"),
                        limit=median(v["unshare"] for v in res.values.get("all", [])),
                        limit_name="unshare -mpniu -f /bin/true",
                        note="create+start+wait+delete in one warm Python process, median of the runs"))
    interp = median(v["python"] for v in res.values.get("all", []))
    if interp is not None:
        out.append(row("limits", "Python interpreter start (python -c pass)", "ms", "lower", limit=interp,
                       limit_name="part of every dockyard command"))
    return out

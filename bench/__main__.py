"""`python -m bench [--quick] [--only registry|node|catalog] [--out DIR]`

Runs the benchmark areas in one process, each against its reference, and writes
DIR/REPORT.md, DIR/ratios.png and DIR/results.json (default DIR: bench/results). Every server,
daemon and container it starts is stopped by PID and every scratch directory removed, also
when interrupted. A subject that is not built or not installed gives "n/a" rows, not a failure.
"""
from __future__ import annotations

import argparse
import compileall
import importlib
import signal
import sys
import time
import traceback
from pathlib import Path

from bench import machine, report
from bench.alternate import log
from bench.plan import for_mode
from bench.procs import REPO, Processes, Scratch
from bench.rows import normalise, unavailable

AREAS = ("registry", "node", "catalog", "build", "proxy", "engine", "s3")


def _run_area(name: str, plan, scratch: Scratch, procs: Processes) -> list[dict]:
    try:
        if name == "catalog":
            try:
                module = importlib.import_module("bench.catalog")
            except ModuleNotFoundError as e:
                if e.name != "bench.catalog":
                    raise
                return [unavailable("catalog", "catalog pages", "ms", "lower", "bench/catalog.py not written yet")]
            return list(module.run(plan.quick))
        module = importlib.import_module(f"bench.{name}_bench")
        return module.run(plan, scratch, procs)
    except Exception as e:  # noqa: BLE001 - one broken area must not lose the others' rows
        traceback.print_exc(file=sys.stderr)
        return [unavailable(name, f"{name} benchmarks", "", "higher", f"area failed: {e.__class__.__name__}: {e}")]
    finally:
        procs.stop_all()


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def _compile_sources() -> None:
    """Write the bytecode an installed package would have before anything is timed.

    A fresh clone has no __pycache__, and with PYTHONDONTWRITEBYTECODE set (as on this
    workplace's shells) every timed `dockyard` command would compile its ~80 modules again:
    581 ms instead of 122 per run in one profile. Users run an install, which has its .pyc."""
    for package in ("oci", "node", "registry"):
        compileall.compile_dir(str(REPO / package), quiet=1, workers=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and short runs (CI smoke)")
    parser.add_argument("--only", choices=AREAS, action="append", help="run only this area (repeatable)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="report directory")
    parser.add_argument("--scratch-dir", default=None, help="parent of the scratch directory (default: $TMPDIR)")
    args = parser.parse_args(argv)
    plan = for_mode(args.quick)
    areas = args.only or list(AREAS)

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)

    _compile_sources()
    started = time.monotonic()
    load_at_start = _loadavg()
    scratch = Scratch(args.scratch_dir)
    procs = Processes()
    rows: list[dict] = []
    try:
        details = machine.details(scratch.root, REPO)
        for area in areas:
            log(f"area {area} ({'quick' if plan.quick else 'full'})")
            area_start = time.monotonic()
            rows += [normalise(r) for r in _run_area(area, plan, scratch, procs)]
            log(f"area {area} took {time.monotonic() - area_start:.0f} s")
    finally:
        procs.stop_all()
        scratch.close()
    duration = time.monotonic() - started
    details.append(("Load average (1/5/15 min) at start, at end", f"{load_at_start}; {_loadavg()}"))
    path = report.write(rows, details, args.out, "quick" if plan.quick else "full", duration,
                        [f"areas run: {', '.join(areas)}",
                         "a load average above the core count means other work shared the machine: "
                         "ratios (same run, alternating) stay meaningful, absolute numbers less so"])
    log(f"report written to {path} after {duration:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

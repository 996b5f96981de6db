"""`top` and `stats`, as docker shows them.

top: the host's ``ps`` (``-ef`` unless other options are given) limited to the container's
processes, matched by the PID column. stats: a table of CPU %, memory, network and block I/O and
PIDs per container, read from its cgroup (node/engine/stats.py); ``--no-stream`` prints one table
from two samples half a second apart, otherwise the table is redrawn every second until Ctrl-C.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

from node.cli.common import CliError

STATS_HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
                 "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
STATS_TABLE = "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"


def register(sub) -> None:
    from node.cli.common import engine_errors as _engine_errors
    p = sub.add_parser("top", help="show the processes of a container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("ps_args", nargs=argparse.REMAINDER, metavar="PS OPTIONS", help="options for ps (default: -ef)")
    p.set_defaults(func=_engine_errors(cmd_top))
    p = sub.add_parser("stats", help="show containers' resource usage")
    p.add_argument("containers", nargs="*", metavar="CONTAINER")
    p.add_argument("-a", "--all", action="store_true", help="all containers (default: running ones)")
    p.add_argument("--no-stream", action="store_true", help="print one table and exit")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate IDs")
    p.add_argument("--format", default="", help="table, json, or a Go template")
    p.set_defaults(func=_engine_errors(cmd_stats))


def _running_pid(container) -> int:
    from node.engine.inspect import inspect_container
    state = inspect_container(container).get("State") or {}
    return int(state.get("Pid") or 0) if state.get("Status") in ("running", "paused") else 0


def cmd_top(args) -> int:
    from node.engine.records import find
    from node.engine.stats import pids
    container = find(args.root, args.container)
    if not _running_pid(container):
        raise CliError(f"container {args.container} is not running", 1)
    wanted = set(pids(container))
    argv = ["ps", *(args.ps_args or ["-ef"])]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise CliError("ps is not installed on this host (procps)", 1) from None
    if out.returncode != 0:
        raise CliError(f"ps {' '.join(argv[1:])}: {out.stderr.strip()}", 1)
    lines = out.stdout.splitlines()
    if not lines:
        return 0
    header = lines[0].split()
    if "PID" not in header:
        raise CliError("ps output has no PID column: add -o pid or use its default columns", 1)
    col = header.index("PID")
    print(lines[0])
    for line in lines[1:]:
        fields = line.split(None, len(header) - 1)
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            print(line)
    return 0


def _binary(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.4g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1024
    return f"{n}B"


def _rows(args, containers) -> list[dict]:
    from node.cli.images import _human_size
    from node.engine import stats
    first = {}
    for c in containers:
        pid = _running_pid(c)
        first[c.id] = stats.sample(c, pid) if pid else None
    time.sleep(0.5)
    rows = []
    for c in containers:
        pid = _running_pid(c)
        name = getattr(c, "name", None) or c.id[:12]
        try:
            from node.engine.inspect import inspect_container
            name = (inspect_container(c).get("Name") or "").lstrip("/") or name
        except Exception:  # noqa: BLE001 - a name is cosmetic here
            pass
        ident = c.id if args.no_trunc else c.id[:12]
        if pid and first.get(c.id):
            u = stats.usage(first[c.id], stats.sample(c, pid))
            fields = {"Container": ident, "ID": ident, "Name": name, "CPUPerc": f"{u['cpu_percent']:.2f}%",
                      "MemUsage": f"{_binary(u['mem'])} / {_binary(u['limit'])}", "MemPerc": f"{u['mem_percent']:.2f}%",
                      "NetIO": f"{_human_size(u['net'][0])} / {_human_size(u['net'][1])}",
                      "BlockIO": f"{_human_size(u['blk'][0])} / {_human_size(u['blk'][1])}", "PIDs": str(u["pids"])}
        else:
            fields = {"Container": ident, "ID": ident, "Name": name, "CPUPerc": "0.00%", "MemUsage": "0B / 0B",
                      "MemPerc": "0.00%", "NetIO": "0B / 0B", "BlockIO": "0B / 0B", "PIDs": "0"}
        rows.append(dict(fields, _json=fields))
    return rows


def _containers(args) -> list:
    from node.engine.records import find, list_containers
    if args.containers:
        return [find(args.root, ref) for ref in args.containers]
    return [c for c in list_containers(args.root) if args.all or _running_pid(c)]


def cmd_stats(args) -> int:
    from node.cli import gotemplate
    try:
        while True:
            rows = _rows(args, _containers(args))
            try:
                lines = gotemplate.format_rows(args.format, rows, STATS_HEADERS, STATS_TABLE)
            except gotemplate.TemplateError as e:
                raise CliError(str(e), 125) from None
            if not args.no_stream and sys.stdout.isatty():
                sys.stdout.write("\033[2J\033[H")
            print("\n".join(line.rstrip() for line in lines), flush=True)
            if args.no_stream:
                return 0
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0

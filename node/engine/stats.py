"""What `stats` and `top` read about a running container: its cgroup's counters (v1 or v2) and
its processes.

The cgroup is the one the OCI bundle names (``linux.cgroupsPath``), so the figures are the same
whichever runtime (builtin, runc, crun) made it. CPU % is docker's: the container's CPU time
over the host's, between two samples, times the number of CPUs. Network bytes come from
``/proc/PID/net/dev`` of the container's init, which shows the container's network namespace.
"""
from __future__ import annotations

import json
import os
import time

from node import hostinfo

CGROUP_ROOT = "/sys/fs/cgroup"
_TICKS = os.sysconf("SC_CLK_TCK")


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _int(text: str, default: int = 0) -> int:
    try:
        return int(text.strip())
    except ValueError:
        return default


def cgroup_rel(container) -> str:
    try:
        with open(container.bundle / "config.json") as f:
            return ((json.load(f).get("linux") or {}).get("cgroupsPath") or "").strip("/")
    except (OSError, ValueError, AttributeError):
        return ""


def _v2(rel: str) -> str | None:
    path = os.path.join(CGROUP_ROOT, rel)
    return path if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")) else None


def pids(container) -> list[int]:
    """Every process in the container's cgroup."""
    rel = cgroup_rel(container)
    if not rel:
        return []
    v2 = _v2(rel)
    text = _read(os.path.join(v2, "cgroup.procs")) if v2 else \
        _read(os.path.join(CGROUP_ROOT, "pids", rel, "cgroup.procs")) or \
        _read(os.path.join(CGROUP_ROOT, "memory", rel, "cgroup.procs"))
    return sorted(int(p) for p in text.split() if p.isdigit())


def _host_cpu_ns() -> int:
    fields = _read("/proc/stat").splitlines()[0].split()[1:8]
    return sum(int(x) for x in fields) * 1_000_000_000 // _TICKS


def _blkio_v1(rel: str) -> tuple[int, int]:
    read = write = 0
    for line in _read(os.path.join(CGROUP_ROOT, "blkio", rel, "blkio.throttle.io_service_bytes")).splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in ("Read", "Write"):
            if parts[1] == "Read":
                read += _int(parts[2])
            else:
                write += _int(parts[2])
    return read, write


def _io_v2(path: str) -> tuple[int, int]:
    read = write = 0
    for line in _read(os.path.join(path, "io.stat")).splitlines():
        for item in line.split()[1:]:
            key, _, value = item.partition("=")
            if key == "rbytes":
                read += _int(value)
            elif key == "wbytes":
                write += _int(value)
    return read, write


def _net(pid: int) -> tuple[int, int]:
    rx = tx = 0
    for line in _read(f"/proc/{pid}/net/dev").splitlines()[2:]:
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            continue
        cols = rest.split()
        if len(cols) >= 9:
            rx, tx = rx + _int(cols[0]), tx + _int(cols[8])
    return rx, tx


def sample(container, pid: int) -> dict:
    """One reading of the counters; `usage` of two readings gives the percentages."""
    rel = cgroup_rel(container)
    v2 = _v2(rel) if rel else None
    host_mem = hostinfo.mem_total()
    if v2:
        cpu = 0
        for line in _read(os.path.join(v2, "cpu.stat")).splitlines():
            if line.startswith("usage_usec"):
                cpu = _int(line.split()[1]) * 1000
        mem = _int(_read(os.path.join(v2, "memory.current")))
        inactive = 0
        for line in _read(os.path.join(v2, "memory.stat")).splitlines():
            if line.startswith("inactive_file "):
                inactive = _int(line.split()[1])
        limit_text = _read(os.path.join(v2, "memory.max")).strip()
        limit = host_mem if limit_text in ("", "max") else _int(limit_text, host_mem)
        blk = _io_v2(v2)
        npids = _int(_read(os.path.join(v2, "pids.current")))
    else:
        cpu = _int(_read(os.path.join(CGROUP_ROOT, "cpuacct", rel, "cpuacct.usage")))
        mem = _int(_read(os.path.join(CGROUP_ROOT, "memory", rel, "memory.usage_in_bytes")))
        inactive = 0
        for line in _read(os.path.join(CGROUP_ROOT, "memory", rel, "memory.stat")).splitlines():
            if line.startswith("total_inactive_file "):
                inactive = _int(line.split()[1])
        limit = min(_int(_read(os.path.join(CGROUP_ROOT, "memory", rel, "memory.limit_in_bytes")), host_mem),
                    host_mem)
        blk = _blkio_v1(rel)
        npids = _int(_read(os.path.join(CGROUP_ROOT, "pids", rel, "pids.current")))
    return {"cpu_ns": cpu, "host_ns": _host_cpu_ns(), "mem": max(0, mem - inactive), "limit": limit,
            "net": _net(pid) if pid else (0, 0), "blk": blk, "pids": npids, "time": time.time()}


def usage(first: dict, second: dict) -> dict:
    cpu_delta = second["cpu_ns"] - first["cpu_ns"]
    host_delta = second["host_ns"] - first["host_ns"]
    cpu = 100.0 * cpu_delta / host_delta * (os.cpu_count() or 1) if host_delta > 0 and cpu_delta > 0 else 0.0
    mem_pct = 100.0 * second["mem"] / second["limit"] if second["limit"] else 0.0
    return {"cpu_percent": cpu, "mem": second["mem"], "limit": second["limit"], "mem_percent": mem_pct,
            "net": second["net"], "blk": second["blk"], "pids": second["pids"]}

"""Machine details for the top of the report: the numbers only mean something next to these."""
from __future__ import annotations

import os
import platform
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

TOOLS = {
    "docker-registry (distribution)": ["docker-registry", "--version"],
    "dockerd": ["dockerd", "--version"],
    "containerd": ["containerd", "--version"],
    "runc": ["runc", "--version"],
    "crun": ["crun", "--version"],
    "wrk": ["wrk", "-v"],
    "hyperfine": ["hyperfine", "--version"],
}


def _first_line(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"
    text = (res.stdout or res.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _disk(path: Path) -> str:
    res = subprocess.run(["findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", str(path)],
                         capture_output=True, text=True)
    mount = res.stdout.strip() or "unknown"
    source = mount.split()[0] if mount != "unknown" else ""
    kind = ""
    if source.startswith("/dev/"):
        dev = Path(source).name
        rota = Path(f"/sys/block/{dev}/queue/rotational")
        if rota.exists():
            kind = " (rotational)" if rota.read_text().strip() == "1" else " (non-rotational)"
    return f"{mount.split(' ')[0]} {' '.join(mount.split()[1:2])}{kind}"


def _git_commit(repo: Path) -> str:
    res = subprocess.run(["git", "-C", str(repo), "log", "-1", "--format=%h %s"], capture_output=True, text=True)
    return res.stdout.strip()[:100] or "unknown"


def details(scratch: Path, repo: Path) -> list[tuple[str, str]]:
    try:
        import aiohttp
        aiohttp_version = aiohttp.__version__
    except ImportError:
        aiohttp_version = "not installed"
    rows = [
        ("CPU", f"{_cpu_model()}, {os.cpu_count()} cores"),
        ("Memory", _mem_total()),
        ("Kernel", platform.release()),
        ("Disk (scratch dir)", _disk(scratch)),
        ("Python", f"{sys.version.split()[0]} (aiohttp {aiohttp_version}, SQLite {sqlite3.sqlite_version})"),
        ("Dockyard commit", _git_commit(repo)),
    ]
    rows += [(name, _first_line(argv)) for name, argv in TOOLS.items()]
    return rows

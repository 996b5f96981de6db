"""Processes, ports, memory and scratch space for the benchmarks.

Everything started here is remembered by PID and stopped by PID (SIGTERM, then SIGKILL); nothing
is ever looked up or killed by name. Scratch directories live under one temporary root that is
unmounted and removed at the end.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"


def venv_tool(name: str) -> str:
    """A console script of this project: the venv's copy if there is one, else from PATH."""
    candidate = VENV_BIN / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


def python() -> str:
    candidate = VENV_BIN / "python"
    return str(candidate) if candidate.exists() else "python3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args[0]} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def wait_for_path(path: Path, proc: subprocess.Popen | None = None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args[0]} exited with {proc.returncode}")
        time.sleep(0.05)
    raise TimeoutError(f"{path} did not appear after {timeout}s")


class Processes:
    """Starts servers and stops exactly those, by PID, in reverse order."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen] = []

    def start(self, argv: list[str], log: Path, env: dict | None = None, **kw) -> subprocess.Popen:
        out = open(log, "ab")
        try:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, start_new_session=True, **kw)
        finally:
            out.close()
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 20.0) -> None:
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if proc in self._procs:
            self._procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self._procs)):
            self.stop(proc)


def status_kib(pid: int, field: str) -> int | None:
    """A kB field of /proc/PID/status (VmRSS, VmHWM), or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def pss_kib(pid: int) -> int | None:
    """Proportional set size: shared pages divided among the processes that map them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def parent_pid(pid: int) -> int | None:
    ppid = status_kib(pid, "PPid")
    return ppid


def descendants(pid: int) -> list[int]:
    """PIDs of all descendants of pid (from /proc/*/stat), for memory of process trees."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class RssSampler:
    """Samples VmRSS of some PIDs (and their descendants) every few ms; keeps the peak sum."""

    def __init__(self, pids: list[int], interval: float = 0.02, tree: bool = True) -> None:
        self.pids = pids
        self.interval = interval
        self.tree = tree
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = list(self.pids)
            if self.tree:
                for pid in self.pids:
                    pids += descendants(pid)
            total = sum(status_kib(p, "VmRSS") or 0 for p in pids)
            self.peak_kib = max(self.peak_kib, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class Scratch:
    """One temporary root for a whole run; `close` unmounts leftovers below it and removes it."""

    def __init__(self, parent: str | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="dockyard-bench-", dir=parent))

    def dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def mounts_below(self) -> list[str]:
        prefix = str(self.root) + "/"
        found = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                target = line.split()[4].replace("\\040", " ")
                if target.startswith(prefix):
                    found.append(target)
        return found

    def purge_networks(self) -> None:
        """Remove the bridges, subnets and nft tables of every agent root below the scratch dir:
        the default bridge outlives its containers (like docker0) and only a purge removes it."""
        stores = [s for depth in ("", "*/", "*/*/", "*/*/*/")
                  for s in self.root.glob(f"{depth}network/networks")]
        if stores:
            from node.network import api
            for store in stores:
                api.purge(store.parent.parent)

    def close(self) -> None:
        self.purge_networks()
        # deepest first; lazy so a busy mount cannot keep us from removing the tree
        for target in sorted(self.mounts_below(), key=len, reverse=True):
            subprocess.run(["umount", "-l", target], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)

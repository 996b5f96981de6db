"""Processes the test servers run as: started in their own session with output to a log file,
stopped by PID (terminate, wait, kill), never by name.

Every process started here is recorded in ``_RUNNING`` until it is stopped; an ``atexit`` hook
(and tests/servers.py's session-finish hook) stops whatever an interrupted run left behind.
"""
from __future__ import annotations

import atexit
import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

# pid -> Popen of every server still running; emptied by stop_process and by the atexit guard.
_RUNNING: dict[int, subprocess.Popen] = {}


def start_process(argv: list[str], log: Path, **kwargs) -> subprocess.Popen:
    """Start a server with stdout+stderr appended to ``log``, in its own process group."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, **kwargs)
    _RUNNING[proc.pid] = proc
    return proc


def stop_process(proc: subprocess.Popen, timeout: float = 15.0, sig: int = signal.SIGTERM) -> None:
    """terminate (or ``sig``), wait, then kill; only this PID, never by name."""
    try:
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    finally:
        _RUNNING.pop(proc.pid, None)


@atexit.register
def _stop_leftovers() -> None:
    for proc in list(_RUNNING.values()):
        stop_process(proc, timeout=5)


def log_tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until(check: Callable[[], bool], timeout: float, proc: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log_tail(log)}")
        if check():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout}s:\n{log_tail(log)}")


def private_dir(prefix: str) -> Path:
    # Short paths under /tmp: unix socket paths are limited to 107 bytes.
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def unmount_below(root: Path) -> None:
    """Lazily unmount anything a killed daemon left mounted under ``root`` (deepest first)."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return
    prefix = str(root) + "/"
    targets = [m.split()[1] for m in mounts if len(m.split()) > 1 and m.split()[1].startswith(prefix)]
    for target in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True)


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def wait_pid_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)

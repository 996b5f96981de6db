"""A private PostgreSQL for the catalog bench (Debian's postgresql 15, as the tests use it).

``private_postgres()`` is a context manager yielding a ``postgresql+asyncpg://`` URL of an
empty database on a free loopback port, with a private socket and data directory under a
temporary root; the server is stopped by its PID (the postmaster's) and the root removed.
Needs root (PostgreSQL refuses to run as root, so it runs as the ``postgres`` user).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

from bench.procs import free_port, wait_for_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def available() -> str | None:
    """None when a private server can be started here, else the reason it cannot."""
    if not (PG_BIN / "postgres").exists():
        return "PostgreSQL 15 is not installed"
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return "needs root and runuser to start PostgreSQL as its own user"
    return None


def _as_postgres(*argv: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv]


@contextlib.contextmanager
def private_postgres() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="dy-catalog-pg-"))
    shutil.chown(root, "postgres", "postgres")
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    shutil.chown(sock, "postgres", "postgres")
    proc: subprocess.Popen | None = None
    try:
        subprocess.run(_as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                    "-E", "UTF8", "--no-sync"), check=True, capture_output=True, timeout=120)
        port = free_port()
        proc = subprocess.Popen(_as_postgres(str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sock),
                                             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                                             "-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(port, proc, timeout=60)
        # The port opens before the server accepts connections ("the database system is starting
        # up"), and on a loaded machine that window is long enough to fail a first createdb.
        for attempt in range(20):
            done = subprocess.run([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                                   "catalog"], capture_output=True, text=True, timeout=60)
            if done.returncode == 0:
                break
            if attempt == 19 or proc.poll() is not None:
                raise RuntimeError(f"createdb failed: {done.stderr.strip()[-300:]}")
            time.sleep(0.25)
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/catalog"
    finally:
        postmaster = None
        with contextlib.suppress(OSError, ValueError, IndexError):
            postmaster = int((data / "postmaster.pid").read_text().split()[0])
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=20)
        if postmaster:
            with contextlib.suppress(ProcessLookupError):
                os.kill(postmaster, signal.SIGQUIT)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and Path(f"/proc/{postmaster}").exists():
                time.sleep(0.05)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)

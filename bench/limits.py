"""The machine's limits, measured in the same run as the servers, so each registry number can be
read against what the hardware allows:

- sha256 with hashlib, 1 MiB updates (every pushed byte must be hashed once by the server);
- sequential disk write with one fsync at the end, in the scratch directory (same disk as the
  registries' data);
- 4 KiB file write + fsync + rename per second (the floor of a durable small-blob commit);
- loopback download and upload through bench.staticserver (sendfile out, discard in), with the
  same client the registries get;
- tiny GETs/s from wrk against that server (one Python event loop, no lookup behind it).
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from bench import wrk
from bench.oci_http import Client

MB = 1e6
MiB = 1 << 20


def sha256_mb_s(total: int) -> float:
    buf = os.urandom(MiB)
    h = hashlib.sha256()
    start = time.perf_counter()
    for _ in range(total // MiB):
        h.update(buf)
    return total / MB / (time.perf_counter() - start)


def disk_write_mb_s(directory: Path, total: int) -> float:
    buf = os.urandom(MiB)
    path = directory / "disk-write.bin"
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(total // MiB):
            os.write(fd, buf)
        os.fsync(fd)
    finally:
        os.close(fd)
    elapsed = time.perf_counter() - start
    path.unlink()
    return total / MB / elapsed


def small_commits_per_s(directory: Path, count: int) -> float:
    """What a registry that fsyncs every blob before renaming it into place can do at best."""
    buf = os.urandom(4096)
    work = directory / "small-commits"
    work.mkdir(exist_ok=True)
    start = time.perf_counter()
    for i in range(count):
        tmp = work / f"{i}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, buf)
        os.fsync(fd)
        os.close(fd)
        os.rename(tmp, work / f"{i}")
    elapsed = time.perf_counter() - start
    for i in range(count):
        (work / f"{i}").unlink()
    work.rmdir()
    return count / elapsed


def loopback_pull_mb_s(port: int, size: int) -> float:
    client = Client(port)
    try:
        start = time.perf_counter()
        client.conn.request("GET", "/blob")
        resp = client.conn.getresponse()
        buf = memoryview(bytearray(MiB))
        total = 0
        while n := resp.readinto(buf):
            total += n
        assert total == size, (total, size)
        return total / MB / (time.perf_counter() - start)
    finally:
        client.close()


def loopback_push_mb_s(port: int, blob: Path) -> float:
    client = Client(port)
    try:
        size = blob.stat().st_size
        start = time.perf_counter()
        with open(blob, "rb") as f:
            client._send_file_range("PUT", "/upload", f, 0, size, {}, (201,)).read()
        return size / MB / (time.perf_counter() - start)
    finally:
        client.close()


def loopback_small_gets(port: int, seconds: float) -> dict:
    return wrk.run(f"http://127.0.0.1:{port}/small", "application/json", seconds=seconds)

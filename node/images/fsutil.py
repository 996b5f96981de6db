"""Small file-system primitives the store relies on: atomic replace and advisory locks."""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from node.atomic import write_atomic
from collections.abc import Iterator


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Readers see the old or the new file, and the new one survives a crash (node/atomic.py)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, durable=True, mode=mode, durable_dir=True)


@contextlib.contextmanager
def locked(path: Path, shared: bool = False) -> Iterator[None]:
    """An flock on ``path`` (created if needed) for the duration of the block. Locks are held by
    the open file, so a killed process never leaves one behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)

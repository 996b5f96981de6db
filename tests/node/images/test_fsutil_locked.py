"""node.images.fsutil.locked, a class now (no contextlib on the run path): same locking."""
from __future__ import annotations

import fcntl
import os

import pytest

from node.images.fsutil import locked


def _try_lock(path, kind) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_exclusive_lock_held_for_the_block_only(tmp_path):
    path = tmp_path / "deep" / "dir" / "x.lock"
    with locked(path):
        assert path.exists()
        assert not _try_lock(path, fcntl.LOCK_SH)
    assert _try_lock(path, fcntl.LOCK_EX)


def test_shared_lock_admits_readers_not_writers(tmp_path):
    path = tmp_path / "s.lock"
    with locked(path, shared=True):
        assert _try_lock(path, fcntl.LOCK_SH)
        assert not _try_lock(path, fcntl.LOCK_EX)
    assert _try_lock(path, fcntl.LOCK_EX)


def test_an_exception_in_the_block_releases_and_propagates(tmp_path):
    path = tmp_path / "e.lock"
    with pytest.raises(KeyError):
        with locked(path):
            raise KeyError("x")
    assert _try_lock(path, fcntl.LOCK_EX)


def test_nested_different_locks(tmp_path):
    a, b = tmp_path / "a.lock", tmp_path / "b.lock"
    with locked(a), locked(b, shared=True):
        assert not _try_lock(a, fcntl.LOCK_SH) and _try_lock(b, fcntl.LOCK_SH)
    assert _try_lock(a, fcntl.LOCK_EX) and _try_lock(b, fcntl.LOCK_EX)

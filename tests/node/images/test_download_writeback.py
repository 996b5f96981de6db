"""The download's writer asks for writeback every 8 MiB (the commit's fsync then finds most of
the blob on disk), and `dockyard pull` freezes the GC before the interpreter's exit."""
from __future__ import annotations

import gc
import os
import types

from node.images import client
from oci.digest import Digest, Hasher


def test_writeback_is_started_every_step_and_the_bytes_are_intact(tmp_path, monkeypatch):
    calls = []
    real = os.posix_fadvise
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, off, n, advice: (calls.append((off, n, advice)),
                                                                          real(fd, off, n, advice))[1])
    step = client.WRITEBACK_STEP
    chunk = os.urandom(1 << 20)
    hasher = Hasher("sha256")
    with open(tmp_path / "blob.part", "wb") as f:
        for _ in range((2 * step + (3 << 20)) // len(chunk)):
            client._write_and_hash(f, hasher, chunk)
    # at 8 MiB: [0, 8) written back; at 16 MiB: [8, 16), and [0, 8) (clean by then) dropped
    assert calls == [(0, 2 * step, os.POSIX_FADV_DONTNEED), (0, 2 * step, os.POSIX_FADV_DONTNEED)]
    assert len(calls) == 2, "one kick per 8 MiB written"
    data = (tmp_path / "blob.part").read_bytes()
    assert data == chunk * (len(data) // len(chunk)) and hasher.digest() == Digest.of(data)


def test_pull_command_freezes_the_gc_before_exit(monkeypatch):
    from node.cli import images as cli_images
    import node.images.pull as pull
    monkeypatch.setattr(pull, "pull_image", lambda *a, **k: None)
    monkeypatch.setattr(cli_images, "_apply_tls", lambda args: None)
    gc.unfreeze()
    try:
        args = types.SimpleNamespace(root="/nonexistent", ref="x", platform=None, quiet=True)
        assert cli_images.cmd_pull(args) == 0
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()

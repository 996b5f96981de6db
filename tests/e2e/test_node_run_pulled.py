"""`dockyard run` on an image it must pull first: pushed to dockyard-registry from an OCI layout
(three busybox layers, one with a whiteout), then run through the real image store by
`.venv/bin/dockyard` itself (pull-if-missing, overlay of the snapshots, whiteouts honoured)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.e2e.node_run_support import CGROUP_PARENT, REPO, leaks, remove_cgroup_parent
from tests.helpers import need, need_root

pytestmark = [pytest.mark.root, pytest.mark.e2e]

DOCKYARD = REPO / ".venv" / "bin" / "dockyard"


def _dockyard(root: Path, *args: str, timeout: float = 120):
    env = dict(os.environ, DOCKYARD_CGROUP_PARENT=CGROUP_PARENT)
    return subprocess.run([str(DOCKYARD), "--root", str(root), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)


@pytest.fixture
def pushed_ref(shared_dockyard_registry, busybox_image_dir):
    from tests import images
    need(importlib.util.find_spec("node.images.pull") is not None, "needs node.images.pull (the image store)")
    need(DOCKYARD.exists(), f"needs {DOCKYARD} (make venv)")
    ref = f"{shared_dockyard_registry.host}/run-{uuid.uuid4().hex[:8]}/busybox:latest"
    images.push_image(busybox_image_dir, ref)
    return ref


@pytest.mark.parametrize("runtime", ["builtin", "runc"])
def test_run_pulls_then_runs_through_the_store(pushed_ref, tmp_path, runtime):
    need_root()
    if runtime != "builtin":
        from tests.helpers import need_tool
        need_tool(runtime)
    root = tmp_path / "root"
    try:
        r = _dockyard(root, "run", "--rm", "--network", "none", "--runtime", runtime, pushed_ref,
                      "sh", "-c", "cat /etc/motd >/dev/null && echo motd; ls /data; echo x > /data/new")
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == ["motd", "added-late.txt", "keep.txt"]   # junk.txt is whited out
        # second run: the image is in the store now, nothing to pull
        r = _dockyard(root, "run", "--name", "again", "--network", "none", "--runtime", runtime, pushed_ref, "ls", "/data")
        assert (r.returncode, r.stdout) == (0, "added-late.txt\nkeep.txt\n"), r.stderr
        assert "Unable to find image" not in r.stderr
        from node.engine.usage import images_in_use
        assert len(images_in_use(root)) == 1                            # what rmi must refuse to remove
        assert _dockyard(root, "rm", "again").returncode == 0
        assert images_in_use(root) == set()
        assert leaks(root) == []
    finally:
        remove_cgroup_parent()

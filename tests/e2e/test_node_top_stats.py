"""`top` and `stats` on a running container: its processes only, and figures from its cgroup."""
from __future__ import annotations

import json
import uuid

import pytest

from tests import images
from tests.e2e.node_images_support import dockyard

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.timeout(200)]


def _ok(r):
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_top_and_stats(busybox_image_dir, tmp_path):
    root, tag = tmp_path / "root", f"top{uuid.uuid4().hex[:6]}"
    _ok(dockyard(root, "load", "-i", str(images.docker_archive(busybox_image_dir, tmp_path / "bb.tar", f"{tag}:1"))))
    name = f"{tag}-c"
    # a second process and 8 MiB of memory held by the shell
    _ok(dockyard(root, "run", "-d", "--name", name, "--network", "none", "-m", "64m", f"{tag}:1", "sh", "-c",
                 "x=$(head -c 8000000 /dev/zero | tr '\\0' a); sleep 1000 & while :; do sleep 1; done"))
    try:
        for _ in range(50):
            top = _ok(dockyard(root, "top", name))
            if "sleep 1000" in top:
                break
        lines = top.splitlines()
        assert lines[0].split()[:3] == ["UID", "PID", "PPID"]
        assert any("sleep 1000" in l for l in lines[1:]) and not any("pytest" in l for l in lines)
        pid_only = _ok(dockyard(root, "top", name, "-o", "pid,comm")).splitlines()
        assert pid_only[0].split() == ["PID", "COMMAND"] and len(pid_only) >= 3
        row = json.loads(_ok(dockyard(root, "stats", "--no-stream", "--format", "{{json .}}", name)))
        assert row["Name"] == name and int(row["PIDs"]) >= 3
        used, limit = row["MemUsage"].split(" / ")
        assert limit == "64MiB" and used.endswith("MiB") and float(used[:-3]) >= 8
        table = _ok(dockyard(root, "stats", "--no-stream")).splitlines()
        assert table[0].split()[:4] == ["CONTAINER", "ID", "NAME", "CPU"] and name in table[1]
    finally:
        dockyard(root, "rm", "-f", name)
    r = dockyard(root, "top", "nosuch")
    assert r.returncode != 0 and "nosuch" in r.stderr

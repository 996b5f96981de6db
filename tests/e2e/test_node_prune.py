"""`system df`, `system prune` and `container|volume|network prune`: docker's prompts, what goes
and what stays (running containers, volumes and networks in use, tagged images)."""
from __future__ import annotations

import uuid

import pytest

from tests import images
from tests.e2e.node_images_support import dockyard

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.timeout(300)]


def _ok(r):
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.fixture
def node(busybox_image_dir, tmp_path):
    root = tmp_path / "root"
    tag = f"prune{uuid.uuid4().hex[:6]}"
    archive = images.docker_archive(busybox_image_dir, tmp_path / "bb.tar", f"{tag}:1")
    _ok(dockyard(root, "load", "-i", str(archive)))
    yield root, tag
    for name in ("up", "done"):
        dockyard(root, "rm", "-f", f"{tag}-{name}")
    for net in ("used", "idle"):
        dockyard(root, "network", "rm", f"{tag}-{net}")


def test_prunes_take_only_what_is_unused(node):
    root, tag = node
    image = f"{tag}:1"
    _ok(dockyard(root, "network", "create", f"{tag}-used"))
    _ok(dockyard(root, "network", "create", f"{tag}-idle"))
    _ok(dockyard(root, "volume", "create", f"{tag}-named"))
    _ok(dockyard(root, "run", "-d", "--name", f"{tag}-up", "--network", f"{tag}-used", image, "sleep", "300"))
    _ok(dockyard(root, "run", "--name", f"{tag}-done", "--network", "none", "-v", "/anon", image,
                 "sh", "-c", "head -c 50000 /dev/zero > /big"))
    df = _ok(dockyard(root, "system", "df", "--format", "{{.Type}}|{{.TotalCount}}|{{.Active}}"))
    assert df.splitlines() == ["Images|1|1", "Containers|2|1", "Local Volumes|2|1", "Build Cache|0|0"]
    assert _ok(dockyard(root, "system", "df")).splitlines()[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]

    asked = dockyard(root, "container", "prune", input="no\n")
    assert "Are you sure you want to continue? [y/N]" in asked.stderr
    assert len(_ok(dockyard(root, "ps", "-aq")).split()) == 2
    out = _ok(dockyard(root, "container", "prune", "-f"))
    assert out.startswith("Deleted Containers:\n") and "Total reclaimed space: " in out
    assert "Total reclaimed space: 0B" not in out  # /big was in the pruned container's layer
    assert _ok(dockyard(root, "ps", "-a", "--format", "{{.Names}}")).split() == [f"{tag}-up"]

    out = _ok(dockyard(root, "volume", "prune", "-f"))
    assert "Deleted Volumes:" in out and f"{tag}-named" not in out   # named volumes need -a
    assert _ok(dockyard(root, "volume", "ls", "-q")).split() == [f"{tag}-named"]
    out = _ok(dockyard(root, "network", "prune", "-f"))
    assert f"{tag}-idle" in out and f"{tag}-used" not in out
    names = _ok(dockyard(root, "network", "ls", "-q")).split()
    assert f"{tag}-used" in names and f"{tag}-idle" not in names

    # the image is used by a container: even `system prune -a` keeps it, until that one stops
    out = _ok(dockyard(root, "system", "prune", "-a", "-f", "--volumes"))
    assert _ok(dockyard(root, "images", "-q")).strip()
    _ok(dockyard(root, "rm", "-f", f"{tag}-up"))
    out = _ok(dockyard(root, "system", "prune", "-a", "-f"))
    assert "Deleted Images:" in out and f"untagged: {image}" in out
    assert _ok(dockyard(root, "images", "-q")).strip() == ""
    assert _ok(dockyard(root, "volume", "ls", "-q")).split() == [f"{tag}-named"]  # no --volumes, no -a

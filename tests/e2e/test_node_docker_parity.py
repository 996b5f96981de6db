"""Side by side with docker on the same image: sizes in `images`, compression on push of an image
loaded from `docker save`, and output into a pipe that closes early (`| head`)."""
from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from tests import images
from tests.e2e.node_images_support import DOCKYARD, dockyard
from tests.helpers import need_tool

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.root, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def loaded(dockerd, tmp_path_factory):
    """A docker-built busybox image, `docker save`d and `dockyard load`ed into a fresh root."""
    work = tmp_path_factory.mktemp("parity")
    prefix = f"parity{uuid.uuid4().hex[:6]}"
    imgs = images.docker_build_busybox(dockerd, work / "build", prefix)
    archive = work / "one.tar"
    dockerd.run("save", "-o", str(archive), imgs.one)
    root = work / "root"
    r = dockyard(root, "load", "-i", str(archive))
    assert r.returncode == 0, r.stderr
    yield root, imgs
    dockerd.run("rmi", "-f", *imgs.tags, check=False)


def _dockyard_row(root, ref: str) -> dict:
    r = dockyard(root, "images", "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    repo, tag = ref.rsplit(":", 1)
    return next(row for row in rows if row["Repository"] == repo and row["Tag"] == tag)


def test_images_size_is_dockers(dockerd, loaded):
    root, imgs = loaded
    theirs = dockerd.run("images", "--format", "{{.Size}}", imgs.one).stdout.strip()
    assert _dockyard_row(root, imgs.one)["Size"] == theirs


def test_push_of_a_loaded_image_compresses_its_layers(dockerd, loaded, shared_dockyard_registry):
    need_tool("skopeo")
    root, imgs = loaded
    ref = f"{shared_dockyard_registry.host}/parity/{uuid.uuid4().hex[:8]}:1"
    assert dockyard(root, "tag", imgs.one, ref).returncode == 0
    r = dockyard(root, "push", ref)
    assert r.returncode == 0, r.stderr
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    manifest = json.loads(raw)
    assert all(layer["mediaType"].endswith("gzip") for layer in manifest["layers"]), manifest
    plain = sum(int(line) for line in subprocess.run(
        ["sh", "-c", f"find {root}/images/content/blobs -type f -size +100k -printf '%s\\n'"],
        capture_output=True, text=True, check=True).stdout.split())
    pushed = sum(layer["size"] for layer in manifest["layers"])
    assert pushed < plain / 1.5, (pushed, plain)
    # Docker pulls it as the same image (same config: same ID), and so does a second push.
    docker_id = dockerd.run("image", "inspect", "--format", "{{.Id}}", imgs.one).stdout.strip()
    dockerd.run("pull", ref)
    assert dockerd.run("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip() == docker_id
    again = dockyard(root, "push", ref)
    assert again.returncode == 0 and "digest: " + json.loads(
        dockyard(root, "inspect", ref).stdout)[0]["RepoDigests"][-1].split("@")[1] in again.stdout
    dockerd.run("rmi", ref, check=False)


def test_output_into_a_closed_pipe_ends_quietly(loaded, shared_dockyard_registry, busybox_image_dir, tmp_path):
    root, imgs = loaded
    # More than a pipe buffer of output, so the write really meets the closed pipe.
    many = " ".join([imgs.one] * 100)
    r = subprocess.run(f"{DOCKYARD} --root {root} inspect {many} | head -n 1",
                       shell=True, capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[" and r.stderr == "", r.stderr
    # A pull whose reader is gone before the first line still finishes the pull.
    ref = f"{shared_dockyard_registry.host}/parity/pipe{uuid.uuid4().hex[:6]}:1"
    images.push_image(busybox_image_dir, ref)
    fresh = tmp_path / "root"
    r = subprocess.run(f"{DOCKYARD} --root {fresh} pull {ref} | true; exit ${{PIPESTATUS[0]}}",
                       shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert dockyard(fresh, "image", "inspect", ref).returncode == 0

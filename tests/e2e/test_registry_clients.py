"""Real clients against dockyard-registry started as a user starts it, on SQLite and PostgreSQL.

The same docker/skopeo/podman flows also run against CNCF distribution (``reference``): that
proves the image builders and the flows themselves, so a failure on dockyard is dockyard's.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests import images
from tests.helpers import need_root, need_tool
from tests.servers import private_dir

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

TARGETS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "reference"]


class Target(str):
    """host:port of the registry under test; ``.kind`` is sqlite, postgres or reference."""
    kind: str


@pytest.fixture(params=TARGETS)
def target(request, dockyard_registry) -> Target:
    if request.param == "reference":
        host = request.getfixturevalue("reference_registry")
    else:
        url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
        host = dockyard_registry(database_url=url).host
    t = Target(host)
    t.kind = request.param
    return t


def unique(prefix: str) -> str:
    # Repositories are unique per test: the reference registry is shared by the session.
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- docker ------------------------------------------------------------------------------------

def push_digest(output: str) -> str:
    m = re.search(r"digest: (sha256:[0-9a-f]{64}) size: \d+", output)
    assert m, output
    return m.group(1)


def layer_lines(output: str, status: str) -> list[str]:
    return [line for line in output.splitlines() if status in line]


@pytest.mark.docker
def test_docker_push_pull_shared_base_and_repush(target, dockerd, tmp_path):
    built = images.docker_build_busybox(dockerd, tmp_path, unique("dy"))
    ns = unique("d")
    one, two = f"{target}/{ns}/one:1", f"{target}/{ns}/two:2"
    id_one = dockerd.run("image", "inspect", "--format", "{{.Id}}", built.one).stdout.strip()
    id_two = dockerd.run("image", "inspect", "--format", "{{.Id}}", built.two).stdout.strip()
    try:
        dockerd.run("tag", built.one, one)
        dockerd.run("tag", built.two, two)
        out = dockerd.run("push", one).stdout
        assert len(layer_lines(out, ": Pushed")) == 3, out
        digest_one = push_digest(out)

        # two shares the base layer with one: the engine mounts it from ns/one, pushes one layer.
        out = dockerd.run("push", two).stdout
        assert layer_lines(out, f"Mounted from {ns}/one"), out
        assert len(layer_lines(out, ": Pushed")) == 1, out
        digest_two = push_digest(out)

        # A re-push uploads nothing and yields the same manifest.
        out = dockerd.run("push", one).stdout
        assert len(layer_lines(out, "Layer already exists")) == 3, out
        assert push_digest(out) == digest_one

        # Remove everything locally, then pull back: same image IDs, the pushed digests.
        dockerd.run("rmi", "-f", id_one, id_two, built.base)
        out = dockerd.run("pull", one).stdout
        assert len(layer_lines(out, "Pull complete")) == 3, out
        assert f"Digest: {digest_one}" in out
        out = dockerd.run("pull", f"{target}/{ns}/two@{digest_two}").stdout
        assert len(layer_lines(out, "Already exists")) == 1 and len(layer_lines(out, "Pull complete")) == 1, out
        info = json.loads(dockerd.run("image", "inspect", one, f"{target}/{ns}/two@{digest_two}").stdout)
        assert [i["Id"] for i in info] == [id_one, id_two]
        assert f"{target}/{ns}/one@{digest_one}" in info[0]["RepoDigests"]
        assert f"{target}/{ns}/two@{digest_two}" in info[1]["RepoDigests"]

        # The pulled bytes are a working image.
        out = dockerd.run("run", "--rm", "--network", "none", one, "cat", "/one.txt").stdout
        assert out == "image one\n"
    finally:
        dockerd.run("rmi", "-f", id_one, id_two, check=False)
        dockerd.run("rmi", "-f", built.base, check=False)


@pytest.mark.docker
def test_docker_load_then_push_keeps_the_oci_builders_diff_ids(target, dockerd, tmp_path):
    image = images.build_busybox_image(tmp_path / "layout", extra=uuid.uuid4().bytes)
    ref = f"{target}/{unique('l')}/loaded:1"
    images.docker_archive(image, tmp_path / "image.tar", ref)
    dockerd.run("load", "-i", str(tmp_path / "image.tar"))
    try:
        config = json.loads(image.config.read())
        assert dockerd.run("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip() == image.config.digest
        out = dockerd.run("push", ref).stdout
        digest = push_digest(out)
        dockerd.run("rmi", "-f", image.config.digest)
        dockerd.run("pull", ref)
        info = json.loads(dockerd.run("image", "inspect", ref).stdout)[0]
        assert info["Id"] == image.config.digest
        assert info["RootFS"]["Layers"] == config["rootfs"]["diff_ids"]
        assert info["RepoDigests"] == [f"{ref.rsplit(':', 1)[0]}@{digest}"]
    finally:
        dockerd.run("rmi", "-f", image.config.digest, check=False)


# -- skopeo ------------------------------------------------------------------------------------

def skopeo(*args: str) -> str:
    r = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"skopeo {' '.join(args)}:\n{r.stderr}"
    return r.stdout


def test_skopeo_copy_both_ways_inspect_list_tags(target, busybox_image_dir, tmp_path):
    need_tool("skopeo")
    image = busybox_image_dir
    repo = f"docker://{target}/{unique('s')}/busybox"
    insecure = "--dest-tls-verify=false"

    skopeo("copy", "-q", insecure, image.ref, f"{repo}:oci")
    dir_layout = images.write_dir_layout(image, tmp_path / "dir")
    skopeo("copy", "-q", insecure, f"dir:{dir_layout}", f"{repo}:dir")

    for tag in ("oci", "dir"):
        raw = skopeo("inspect", "--raw", "--tls-verify=false", f"{repo}:{tag}").encode()
        assert raw == image.manifest.read(), "the registry must return the exact bytes pushed"
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"{repo}:oci"))
    assert info["Digest"] == image.manifest.digest
    assert info["Layers"] == [b.digest for b in image.layers]
    assert info["Architecture"] == "amd64"
    tags = json.loads(skopeo("list-tags", "--tls-verify=false", repo))["Tags"]
    # The spec asks for lexical order; distribution 2.8 returns storage order.
    assert (sorted(tags) if target.kind == "reference" else tags) == ["dir", "oci"]

    # Back from the registry into a fresh OCI layout and a dir: -- byte for byte.
    skopeo("copy", "-q", "--src-tls-verify=false", f"{repo}:dir", f"oci:{tmp_path / 'back'}:back")
    digest, raw = images.read_layout_manifest(tmp_path / "back", "back")
    assert digest == image.manifest.digest and raw == image.manifest.read()
    for blob in [image.config, *image.layers]:
        assert (tmp_path / "back" / "blobs" / "sha256" / blob.digest[7:]).read_bytes() == blob.read()
    skopeo("copy", "-q", "--src-tls-verify=false", f"{repo}:oci", f"dir:{tmp_path / 'backdir'}")
    assert (tmp_path / "backdir" / "manifest.json").read_bytes() == image.manifest.read()


def test_skopeo_copy_all_multiplatform_index(target, tmp_path):
    need_tool("skopeo")
    image = images.build_multiplatform_image(tmp_path / "multi", "v1")
    repo = f"docker://{target}/{unique('m')}/multi"
    skopeo("copy", "-q", "--all", "--dest-tls-verify=false", image.ref, f"{repo}:v1")
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"{repo}:v1").encode()
    assert sha256(raw) == image.manifest.digest
    arm = json.loads(skopeo("inspect", "--tls-verify=false", "--override-arch", "arm64",
                            "--override-variant", "v8", f"{repo}:v1"))
    assert arm["Architecture"] == "arm64"
    assert arm["Layers"] == [b.digest for b in image.children[1].layers]
    skopeo("copy", "-q", "--all", "--src-tls-verify=false", f"{repo}:v1", f"oci:{tmp_path / 'back'}:v1")
    assert images.read_layout_manifest(tmp_path / "back", "v1")[0] == image.manifest.digest


# -- podman ------------------------------------------------------------------------------------

def test_podman_push_pull(target, busybox_image_dir, tmp_path, request):
    need_root()
    need_tool("podman")
    # podman refuses a runroot longer than 50 characters: a short private dir under /tmp.
    state = private_dir("tsrv-podman-")
    request.addfinalizer(lambda: shutil.rmtree(state, ignore_errors=True))
    base = ["podman", "--root", str(state / "root"), "--runroot", str(state / "run"),
            "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
            "--tmpdir", str(state / "tmp")]

    def podman(*args: str) -> str:
        r = subprocess.run([*base, *args], capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, f"podman {' '.join(args)}:\n{r.stdout}\n{r.stderr}"
        return r.stdout

    ref = f"{target}/{unique('p')}/busybox:1"
    image_id = podman("pull", "-q", busybox_image_dir.ref).strip().splitlines()[-1]
    podman("tag", image_id, ref)
    podman("push", "--tls-verify=false", "--digestfile", str(tmp_path / "digest"), ref)
    digest = (tmp_path / "digest").read_text().strip()
    podman("rmi", "-a", "-f")
    assert podman("images", "-q").strip() == ""
    pulled = podman("pull", "-q", "--tls-verify=false", ref).strip().splitlines()[-1]
    assert pulled == image_id
    info = json.loads(podman("image", "inspect", ref))[0]
    assert info["Digest"] == digest
    assert f"{ref.rsplit(':', 1)[0]}@{digest}" in info["RepoDigests"]


@pytest.mark.docker
def test_docker_pulls_oci_index_and_docker_list_then_skopeo_delete(target, dockerd, tmp_path):
    need_tool("skopeo")
    image = images.build_multiplatform_image(tmp_path / "multi", "v1")
    amd64_config = image.children[0].config.digest
    repo = f"{target}/{unique('x')}/multi"
    skopeo("copy", "-q", "--all", "--dest-tls-verify=false", image.ref, f"docker://{repo}:index")
    skopeo("copy", "-q", "--all", "--format", "v2s2", "--dest-tls-verify=false", image.ref, f"docker://{repo}:list")
    kinds = {tag: json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{repo}:{tag}"))["mediaType"]
             for tag in ("index", "list")}
    assert kinds == {"index": images.OCI_INDEX,
                     "list": "application/vnd.docker.distribution.manifest.list.v2+json"}
    try:
        for tag in ("index", "list"):
            dockerd.run("pull", f"{repo}:{tag}")  # the engine picks linux/amd64 from the index
            assert dockerd.run("image", "inspect", "--format", "{{.Id}}", f"{repo}:{tag}").stdout.strip() == amd64_config
    finally:
        dockerd.run("rmi", "-f", amd64_config, check=False)

    # skopeo delete removes the manifest (and so the tag) the reference resolves to.
    skopeo("delete", "--tls-verify=false", f"docker://{repo}:list")
    r = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{repo}:list"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "manifest unknown" in r.stderr
    assert json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{repo}"))["Tags"] == ["index"]

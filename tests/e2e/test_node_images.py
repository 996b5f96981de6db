"""`dockyard` image commands end to end, as a subprocess, against dockyard-registry AND the
reference registry (distribution 2.8): pull (single and multi-platform), push then pull back
with identical digests, login with Basic and Bearer auth, save -> skopeo / docker load, load.
"""
from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import uuid
from pathlib import Path

import pytest

from tests import images
from tests.e2e.node_images_support import (DOCKYARD, PASSWORD, USER, basic_registry, dockyard,  # noqa: F401
                                           tls_registry, token_registry)
from tests.helpers import need, need_root, need_tool

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture(params=["dockyard", "reference"])
def registry(request) -> str:
    need(DOCKYARD.exists(), f"needs {DOCKYARD} (make venv)")
    need_tool("skopeo")
    need_root()  # unpacking keeps ownership and makes whiteout devices
    name = "shared_dockyard_registry" if request.param == "dockyard" else "reference_registry"
    reg = request.getfixturevalue(name)
    return reg.host if request.param == "dockyard" else reg


@pytest.fixture(scope="module")
def busybox(tmp_path_factory):
    need(images.BUSYBOX.exists(), "needs /bin/busybox")
    return images.build_busybox_image(tmp_path_factory.mktemp("img") / "layout")


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    need(images.BUSYBOX.exists(), "needs /bin/busybox")
    return images.build_multiplatform_image(tmp_path_factory.mktemp("multi") / "layout")


def repo() -> str:
    return f"nodeimg-{uuid.uuid4().hex[:8]}"


def ok(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r.stdout


def fails(r: subprocess.CompletedProcess, pattern: str) -> None:
    assert r.returncode != 0, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    assert re.search(pattern, lines[0], re.I), lines[0]


def inspect(root: Path, ref: str) -> dict:
    return json.loads(ok(dockyard(root, "image", "inspect", ref)))[0]


def test_pull_single_platform(registry, busybox, tmp_path):
    ref = f"{registry}/{repo()}/busybox:1"
    digest = images.push_image(busybox, ref)
    root = tmp_path / "root"
    out = ok(dockyard(root, "pull", ref))
    assert f"Digest: {digest}" in out and f"Status: Downloaded newer image for {ref}" in out
    info = inspect(root, ref)
    assert info["Id"] == busybox.config.digest
    assert info["RepoDigests"] == [f"{ref.rsplit(':', 1)[0]}@{digest}"]
    lower = [Path(p) for p in info["GraphDriver"]["Data"]["LowerDirs"]]
    assert len(lower) == 3 and (lower[0] / "bin" / "busybox").is_file()
    junk = os.lstat(lower[2] / "data" / "junk.txt")  # the third layer's whiteout, overlay form
    assert stat.S_ISCHR(junk.st_mode) and junk.st_rdev == 0
    # the same image again: nothing fetched, nothing changed
    out = ok(dockyard(root, "pull", ref))
    assert "Status: Image is up to date" in out and out.count("Already exists") == 3
    # by short ID, by digest, by the familiar name without tag
    assert inspect(root, busybox.config.digest[7:19])["Id"] == info["Id"]
    assert inspect(root, f"{ref.rsplit(':', 1)[0]}@{digest}")["Id"] == info["Id"]
    rows = ok(dockyard(root, "images", "--digests")).splitlines()
    assert rows[0].split()[:3] == ["REPOSITORY", "TAG", "DIGEST"] and digest in rows[1]
    ok(dockyard(root, "tag", ref, "local/alias:2"))
    assert ok(dockyard(root, "images", "-q")).split() == [busybox.config.digest[7:19]]
    listed = [json.loads(line) for line in ok(dockyard(root, "images", "--format", "json")).splitlines()]
    assert {(r["Repository"], r["Tag"]) for r in listed} == {(ref.rsplit(":", 1)[0], "1"), ("local/alias", "2")}
    assert all(r["ID"] == busybox.config.digest[7:19] and r["Size"].endswith("MB") for r in listed)


def test_pull_multi_platform(registry, multi, tmp_path):
    ref = f"{registry}/{repo()}/multi:latest"
    index_digest = images.push_image(multi, ref)
    root = tmp_path / "root"
    out = ok(dockyard(root, "pull", ref))
    assert f"Digest: {index_digest}" in out
    amd64 = inspect(root, ref)
    assert amd64["Architecture"] == "amd64" and amd64["Id"] == multi.children[0].config.digest
    ok(dockyard(root, "pull", "--platform", "linux/arm64/v8", ref))
    arm64 = inspect(root, ref)
    assert arm64["Architecture"] == "arm64" and arm64["Id"] == multi.children[1].config.digest
    fails(dockyard(root, "pull", "--platform", "linux/s390x", ref), "no matching manifest for linux/s390x")


def test_push_then_pull_back_identical(registry, busybox, tmp_path):
    src = f"{registry}/{repo()}/busybox:1"
    digest = images.push_image(busybox, src)
    root = tmp_path / "root"
    ok(dockyard(root, "pull", "-q", src))
    dst = f"{registry}/{repo()}/copy:2"
    ok(dockyard(root, "tag", src, dst))
    out = ok(dockyard(root, "push", dst))
    assert f"2: digest: {digest} size:" in out
    assert out.count("Mounted from") == 4  # same registry, another repository: no bytes sent
    again = ok(dockyard(root, "push", dst))
    assert again.count("Layer already exists") == 4
    fresh = tmp_path / "fresh"
    out = ok(dockyard(fresh, "pull", dst))
    assert f"Digest: {digest}" in out
    assert inspect(fresh, dst)["Id"] == busybox.config.digest
    served = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{dst}"],
                            capture_output=True, check=True).stdout
    assert served == busybox.manifest.read()


def test_push_new_layer_chunked(registry, tmp_path, monkeypatch):
    """A layer above the chunk size goes up in PATCH chunks and comes back identical."""
    layout = tmp_path / "layout"
    big = os.urandom(20 << 20)  # incompressible: the gzip blob stays > 16 MiB
    image = images.build_busybox_image(layout, extra=big)
    root = tmp_path / "root"
    ok(dockyard(root, "load", "-i", str(_oci_archive(image, tmp_path / "big.tar"))))
    dst = f"{registry}/{repo()}/big:1"
    ok(dockyard(root, "tag", f"localhost/big:1", dst))
    out = ok(dockyard(root, "push", dst))
    assert f"digest: {image.manifest.digest}" in out and out.count("Pushed") == 4
    fresh = tmp_path / "fresh"
    ok(dockyard(fresh, "pull", dst))
    extra = Path(inspect(fresh, dst)["GraphDriver"]["Data"]["LowerDirs"][1]) / "extra.bin"
    assert extra.read_bytes() == big


def _oci_archive(image, out: Path) -> Path:
    subprocess.run(["skopeo", "copy", "-q", image.ref, f"oci-archive:{out}:localhost/big:1"], check=True)
    return out


def test_failures_are_one_line(registry, tmp_path):
    root = tmp_path / "root"
    fails(dockyard(root, "pull", f"{registry}/{repo()}/nothing:1"), "not found")
    fails(dockyard(root, "pull", "127.0.0.1:9/x:1"), "cannot reach registry 127.0.0.1:9")
    fails(dockyard(root, "image", "inspect", "nothere:1"), "No such image")
    fails(dockyard(root, "rmi", "nothere:1"), "No such image")
    fails(dockyard(root, "pull", "lower/UPPER:1"), "invalid reference")
    fails(dockyard(root, "load", "-i", str(tmp_path / "missing.tar")), "No such file")


# -- auth ----------------------------------------------------------------------------------

@pytest.fixture(params=["basic", "bearer"])
def auth_registry(request):
    need(DOCKYARD.exists(), f"needs {DOCKYARD} (make venv)")
    need_root()
    return request.getfixturevalue("basic_registry" if request.param == "basic" else "token_registry")


def test_login_push_pull_logout(auth_registry, reference_registry, busybox, tmp_path):
    cfg = tmp_path / "cfg"
    root = tmp_path / "root"
    src = f"{reference_registry}/{repo()}/busybox:1"
    digest = images.push_image(busybox, src)
    ok(dockyard(root, "pull", "-q", src, config=cfg))
    dst = f"{auth_registry.host}/{repo()}/secret:1"
    ok(dockyard(root, "tag", src, dst, config=cfg))
    fails(dockyard(root, "push", dst, config=cfg), "authentication required")
    fails(dockyard(root, "login", auth_registry.host, "-u", USER, "--password-stdin", config=cfg, input="wrong\n"),
          "refused|denied")
    assert not (cfg / "config.json").exists()
    out = ok(dockyard(root, "login", auth_registry.host, "-u", USER, "--password-stdin", config=cfg,
                      input=PASSWORD + "\n"))
    assert "Login Succeeded" in out
    saved = cfg / "config.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert auth_registry.host in json.loads(saved.read_text())["auths"]
    assert f"digest: {digest}" in ok(dockyard(root, "push", dst, config=cfg))
    fresh = tmp_path / "fresh"
    ok(dockyard(fresh, "pull", dst, config=cfg))
    assert inspect(fresh, dst)["Id"] == busybox.config.digest
    if auth_registry.kind == "bearer":
        repo_name = dst.split("/", 1)[1].rsplit(":", 1)[0]
        assert f"repository:{repo_name}:pull,push" in auth_registry.scopes
        assert f"repository:{repo_name}:pull" in auth_registry.scopes
    ok(dockyard(root, "logout", auth_registry.host, config=cfg))
    assert auth_registry.host not in json.loads(saved.read_text()).get("auths", {})
    fails(dockyard(tmp_path / "third", "pull", dst, config=cfg), "authentication required")


def test_https_with_ca_file(tls_registry, busybox, tmp_path):
    need(DOCKYARD.exists(), f"needs {DOCKYARD} (make venv)")
    need_root()
    host, ca = tls_registry
    ref = f"{host}/{repo()}/busybox:1"
    r = subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", busybox.ref, f"docker://{ref}"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    tls = {"DOCKYARD_TLS_REGISTRIES": host}
    root = tmp_path / "root"
    fails(dockyard(root, "pull", ref, env=tls), "certificate")  # not trusted without the CA
    out = ok(dockyard(root, "pull", ref, env={**tls, "DOCKYARD_CA_FILE": str(ca)}))
    assert f"Digest: {busybox.manifest.digest}" in out
    out = ok(dockyard(tmp_path / "flag", "pull", "--ca-file", str(ca), ref, env=tls))
    assert f"Digest: {busybox.manifest.digest}" in out
    # loopback without the TLS listing: plain HTTP, which this TLS-only server cannot answer
    assert dockyard(tmp_path / "plain", "pull", ref).returncode != 0


# -- save / load -----------------------------------------------------------------------------

def test_save_skopeo_and_load_round_trip(registry, busybox, tmp_path):
    ref = f"{registry}/{repo()}/busybox:1"
    digest = images.push_image(busybox, ref)
    root = tmp_path / "root"
    ok(dockyard(root, "pull", "-q", ref))
    archive = tmp_path / "out.tar"
    ok(dockyard(root, "save", "-o", str(archive), ref))
    info = json.loads(subprocess.run(["skopeo", "inspect", f"oci-archive:{archive}"], capture_output=True,
                                     text=True, check=True).stdout)
    assert info["Digest"] == digest and len(info["Layers"]) == 3
    other = tmp_path / "other"
    assert ok(dockyard(other, "load", "-i", str(archive))).strip() == f"Loaded image: {ref}"
    loaded = inspect(other, ref)
    assert loaded["Id"] == busybox.config.digest and loaded["Descriptor"]["digest"] == digest
    # through a pipe: save to stdout, load from stdin
    piped = tmp_path / "piped"
    r = subprocess.run(f"{DOCKYARD} --root {root} save {ref} | {DOCKYARD} --root {piped} load", shell=True,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == f"Loaded image: {ref}", r.stderr
    assert inspect(piped, ref)["Id"] == busybox.config.digest
    # a docker-archive (docker save format) loads too
    dock = images.docker_archive(busybox, tmp_path / "docker.tar", "fromdocker:7")
    assert "Loaded image: fromdocker:7" in ok(dockyard(other, "load", "-i", str(dock)))
    assert inspect(other, "fromdocker:7")["Id"] == busybox.config.digest
    # rmi: untag keeps the image while another tag names it; the last one deletes it
    assert ok(dockyard(other, "rmi", "fromdocker:7")).strip() == "Untagged: fromdocker:7"
    out = ok(dockyard(other, "rmi", ref))
    assert f"Deleted: {busybox.config.digest}" in out
    assert not list((other / "images" / "snapshots").iterdir())
    assert not list((other / "images" / "content" / "blobs" / "sha256").iterdir())


@pytest.mark.docker
def test_save_then_docker_load(dockerd, busybox, tmp_path):
    need_root()
    root = tmp_path / "root"
    ok(dockyard(root, "load", "-i", str(images.docker_archive(busybox, tmp_path / "in.tar", "dysave:1"))))
    name = f"dysave-{uuid.uuid4().hex[:6]}:1"
    ok(dockyard(root, "tag", "dysave:1", name))
    archive = tmp_path / "save.tar"
    ok(dockyard(root, "save", "-o", str(archive), name))
    out = dockerd.run("load", "-i", str(archive)).stdout
    assert f"Loaded image: {name}" in out
    try:
        docker_id = dockerd.run("image", "inspect", "--format", "{{.Id}}", name).stdout.strip()
        assert docker_id == busybox.config.digest
    finally:
        dockerd.run("rmi", name, check=False)


def test_rmi_refuses_while_a_container_uses_the_image(reference_registry, busybox, tmp_path):
    need(DOCKYARD.exists(), f"needs {DOCKYARD} (make venv)")
    need_root()
    ref = f"{reference_registry}/{repo()}/busybox:1"
    images.push_image(busybox, ref)
    root = tmp_path / "root"
    ok(dockyard(root, "pull", "-q", ref))
    cid = ok(dockyard(root, "create", "--network", "none", ref, "true")).strip()
    try:
        fails(dockyard(root, "rmi", ref), "being used by a container")
        assert ok(dockyard(root, "rmi", "-f", ref)).strip() == f"Untagged: {ref}"
        info = inspect(root, busybox.config.digest)  # the bytes stay for the container
        assert all(Path(p).is_dir() for p in info["GraphDriver"]["Data"]["LowerDirs"])
    finally:
        dockyard(root, "rm", "-f", cid)
    assert "Deleted:" in ok(dockyard(root, "rmi", busybox.config.digest))


@pytest.mark.docker
def test_pull_what_docker_pushed(dockerd, registry, tmp_path):
    """Docker schema2 manifests and layers, built by the classic builder and pushed by docker."""
    prefix = f"dypull-{uuid.uuid4().hex[:6]}"
    built = images.docker_build_busybox(dockerd, tmp_path / "ctx", prefix)
    ref = f"{registry}/{repo()}/one:1"
    try:
        dockerd.run("tag", built.one, ref)
        out = dockerd.run("push", ref).stdout
        digest = re.search(r"digest: (sha256:[0-9a-f]{64})", out).group(1)
        docker_id = dockerd.run("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()
        root = tmp_path / "root"
        assert f"Digest: {digest}" in ok(dockyard(root, "pull", ref))
        info = inspect(root, ref)
        assert info["Id"] == docker_id
        assert info["Descriptor"]["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
        top = Path(info["GraphDriver"]["Data"]["LowerDirs"][-1])
        assert (top / "data" / "payload.bin").stat().st_size == 32 * 4096
    finally:
        dockerd.run("rmi", "-f", ref, *built.tags, check=False)


def test_concurrent_pulls_converge(registry, busybox, tmp_path):
    ref = f"{registry}/{repo()}/busybox:1"
    images.push_image(busybox, ref)
    root = tmp_path / "root"
    env = dict(os.environ, DOCKYARD_CONFIG=str(tmp_path / "cfg"))
    procs = [subprocess.Popen([str(DOCKYARD), "--root", str(root), "pull", "-q", ref], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], results
    snaps = sorted(p.name for p in (root / "images" / "snapshots").iterdir())
    assert len(snaps) == 3 and not any(s.startswith(".") for s in snaps)
    assert len(json.loads((root / "images" / "images.json").read_text())["images"]) == 1


def test_save_two_images_in_one_archive(tmp_path):
    need(DOCKYARD.exists(), f"needs {DOCKYARD} (make venv)")
    need_root()
    need_tool("skopeo")
    root = tmp_path / "root"
    one = images.build_busybox_image(tmp_path / "one")
    two = images.build_busybox_image(tmp_path / "two", extra=b"the second image")
    ok(dockyard(root, "load", "-i", str(images.docker_archive(one, tmp_path / "1.tar", "pair/one:1"))))
    ok(dockyard(root, "load", "-i", str(images.docker_archive(two, tmp_path / "2.tar", "pair/two:2"))))
    archive = tmp_path / "both.tar"
    ok(dockyard(root, "save", "-o", str(archive), "pair/one:1", "pair/two:2"))
    for tag, image in (("1", one), ("2", two)):
        info = json.loads(subprocess.run(["skopeo", "inspect", "--config", f"oci-archive:{archive}:{tag}"],
                                         capture_output=True, text=True, check=True).stdout)
        assert info["rootfs"]["diff_ids"] == [l.diff_id for l in image.layers]
    other = tmp_path / "other"
    out = ok(dockyard(other, "load", "-i", str(archive))).splitlines()
    assert out == ["Loaded image: pair/one:1", "Loaded image: pair/two:2"]
    assert inspect(other, "pair/two:2")["Id"] == two.config.digest
    # the shared base layer is stored and unpacked once
    assert len(list((other / "images" / "snapshots").iterdir())) == 5

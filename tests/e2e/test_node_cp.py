"""`cp`, `diff` and `export` side by side with docker on the same image: round trips keep modes,
owners, symlinks and hardlinks; a container's symlinks never lead the host out of its root."""
from __future__ import annotations

import os
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from tests import images
from tests.e2e.node_images_support import DOCKYARD, dockyard

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.root, pytest.mark.timeout(300)]

SCRIPT = "echo x > /new; rm /one.txt; mkdir -p /data/sub; echo y > /data/sub/f; ln -s / /tmp/up; sleep 300"


@pytest.fixture(scope="module")
def pair(dockerd, tmp_path_factory):
    """The same container (same image, same changes) under docker and under dockyard."""
    work = tmp_path_factory.mktemp("cp")
    prefix = f"cp{uuid.uuid4().hex[:6]}"
    imgs = images.docker_build_busybox(dockerd, work / "build", prefix)
    dockerd.run("save", "-o", str(work / "one.tar"), imgs.one)
    root = work / "root"
    assert dockyard(root, "load", "-i", str(work / "one.tar")).returncode == 0
    name = f"cp-{prefix}"
    dockerd.run("run", "-d", "--name", name, "--network", "none", imgs.one, "sh", "-c", SCRIPT)
    r = dockyard(root, "run", "-d", "--name", name, "--network", "none", imgs.one, "sh", "-c", SCRIPT)
    assert r.returncode == 0, r.stderr
    for _ in range(50):  # the script's changes are in place once /tmp/up exists
        if dockyard(root, "exec", name, "test", "-L", "/tmp/up").returncode == 0:
            break
    yield root, name, dockerd, work
    dockerd.run("rm", "-f", name, check=False)
    dockyard(root, "rm", "-f", name)
    dockerd.run("rmi", "-f", *imgs.tags, check=False)


def test_diff_like_docker(pair):
    # first in the module: the copies below change both containers differently
    root, name, docker, _ = pair
    ours = _ok(dockyard(root, "diff", name)).stdout.splitlines()
    theirs = docker.run("diff", name).stdout.splitlines()
    assert sorted(ours) == sorted(theirs), (ours, theirs)
    assert "A /new" in ours and "D /one.txt" in ours


def _tree(top: Path) -> list[tuple]:
    out = []
    for dirpath, dirs, files in os.walk(top):
        for n in sorted(dirs + files):
            p = Path(dirpath) / n
            st = p.lstat()
            out.append((str(p.relative_to(top)), st.st_mode, st.st_uid, st.st_gid,
                        os.readlink(p) if p.is_symlink() else (p.read_bytes() if p.is_file() else None),
                        st.st_nlink if p.is_file() and not p.is_symlink() else 0))
    return sorted(out)


def _sample(base: Path) -> Path:
    src = base / "payload"
    (src / "sub").mkdir(parents=True)
    (src / "secret.txt").write_text("s\n")
    os.chmod(src / "secret.txt", 0o640)
    os.chown(src / "secret.txt", 1234, 5678)
    (src / "sub" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(src / "sub" / "run.sh", 0o755)
    os.symlink("../secret.txt", src / "sub" / "link")
    os.link(src / "secret.txt", src / "hard.txt")
    os.chown(src / "sub", 42, 43)
    return src


def test_cp_round_trip_like_docker(pair, tmp_path):
    root, name, docker, _ = pair
    src = _sample(tmp_path)
    results = {}
    for tool in ("docker", "dockyard"):
        out = tmp_path / f"back-{tool}"
        out.mkdir()
        run = (lambda *a: docker.run(*a)) if tool == "docker" else (lambda *a: _ok(dockyard(root, *a)))
        run("cp", "-a", str(src), f"{name}:/tmp/")
        run("cp", "-a", f"{name}:/tmp/payload", str(out / "copy"))
        results[tool] = _tree(out / "copy")
    # docker's copy-out ignores -a for owners (its CLI extracts with NoLchown), though its docs
    # promise them: dockyard keeps them, so its round trip is exact.
    assert results["dockyard"] == _tree(src)
    no_owner = lambda tree: [(p, mode, data, links) for p, mode, _, _, data, links in tree]  # noqa: E731
    assert no_owner(results["docker"]) == no_owner(results["dockyard"])
    listing = "stat -c '%n %u:%g %a' /tmp/payload /tmp/payload/* /tmp/payload/sub/*"
    assert _ok(dockyard(root, "exec", name, "sh", "-c", listing)).stdout == \
        docker.run("exec", name, "sh", "-c", listing).stdout


def _ok(r):
    assert r.returncode == 0, r.stderr
    return r


def test_cp_without_archive_gives_root_in_the_container_and_the_caller_on_the_host(pair, tmp_path):
    root, name, _, _ = pair
    src = _sample(tmp_path)
    _ok(dockyard(root, "cp", str(src / "secret.txt"), f"{name}:/tmp/plain.txt"))
    assert _ok(dockyard(root, "exec", name, "stat", "-c", "%u:%g:%a", "/tmp/plain.txt")).stdout.strip() == "0:0:640"
    os.chown(tmp_path, 0, 0)
    _ok(dockyard(root, "cp", f"{name}:/tmp/plain.txt", str(tmp_path / "got.txt")))
    st = (tmp_path / "got.txt").stat()
    assert (st.st_uid, st.st_gid, (tmp_path / "got.txt").read_text()) == (os.getuid(), os.getgid(), "s\n")
    # a file onto an existing directory lands inside it; a directory onto a file is refused
    _ok(dockyard(root, "cp", f"{name}:/tmp/plain.txt", str(tmp_path)))
    assert (tmp_path / "plain.txt").is_file()
    r = dockyard(root, "cp", f"{name}:/data", str(tmp_path / "got.txt"))
    assert r.returncode == 1 and "cannot copy a directory to a file" in r.stderr


def test_container_symlinks_never_reach_the_host(pair, tmp_path):
    root, name, _, _ = pair
    canary = tmp_path / f"canary-{uuid.uuid4().hex[:6]}"
    canary.mkdir()
    (canary / "host-secret").write_text("host\n")
    # /tmp/up -> / inside the container: through it, the host's paths are not reachable
    r = dockyard(root, "cp", f"{name}:/tmp/up{canary}/host-secret", str(tmp_path / "stolen"))
    assert r.returncode != 0 and not (tmp_path / "stolen").exists()
    # and writing through it lands in the container's own root, never on the host
    (tmp_path / "planted").write_text("p\n")
    r = dockyard(root, "cp", str(tmp_path / "planted"), f"{name}:/tmp/up/etc/")
    assert r.returncode == 0, r.stderr
    assert _ok(dockyard(root, "exec", name, "cat", "/etc/planted")).stdout == "p\n"
    assert not Path("/etc/planted").exists()
    # a tar with .. in it is refused
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        info = tarfile.TarInfo("../../escape")
        tar.addfile(info)
    r = subprocess.run(f"{DOCKYARD} --root {root} cp - {name}:/tmp < {bad}",
                       shell=True, capture_output=True, text=True)
    assert r.returncode != 0 and "'..'" in r.stderr


def test_export_and_cp_of_a_stopped_container(pair, tmp_path):
    root, name, _, _ = pair
    out = tmp_path / "fs.tar"
    _ok(dockyard(root, "export", "-o", str(out), name))
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
    assert {"bin/busybox", "new", "data/sub/f"} <= names and "one.txt" not in names
    stopped = f"{name}-stopped"
    image = dockyard(root, "ps", "-a", "--format", "{{.Image}}", "--filter", f"name={name}").stdout.split()[0]
    _ok(dockyard(root, "create", "--name", stopped, "--network", "none", image, "true"))
    try:
        _ok(dockyard(root, "cp", f"{stopped}:/one.txt", str(tmp_path / "one.txt")))
        assert (tmp_path / "one.txt").read_text() == "image one\n"
    finally:
        dockyard(root, "rm", "-f", stopped)

"""`dockyard build` against docker's BuildKit: the same Dockerfiles and contexts, built by both
from the same busybox bytes, must give the same flattened file trees (paths, types, modes,
owners, sizes, content, link targets, hardlinks; mtimes aside) and the same config fields.

Docker here is Debian's docker.io 20.10: its own client (/usr/bin/docker) drives the daemon's
built-in BuildKit with DOCKER_BUILDKIT=1 (the newer /usr/local/bin/docker wants a buildx plugin
that is not installed). That BuildKit has no heredocs: those cases are checked by behaviour in
test_node_build.py. Then the image goes through `dockyard push` to a registry and runs with
`docker run`, giving what `dockyard run` gives.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.e2e.node_build_support import (BASE, base_archive, flatten, image_layers, leftovers,  # noqa: F401
                                          load_base, make_context, remove_cgroup_parent, run_dockyard)
from tests.helpers import need

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.docker, pytest.mark.slow]

DEBIAN_DOCKER = "/usr/bin/docker"
CONFIG_FIELDS = ("Cmd", "Entrypoint", "Env", "WorkingDir", "User", "ExposedPorts", "Labels", "Volumes",
                 "StopSignal", "Healthcheck", "Shell", "OnBuild")

CORPUS = {
    "basic": ({"app/run.sh": "#!/bin/sh\necho run\n", "app/data/x.txt": "x\n", "top.txt": "top\n",
               ".dockerignore": "*.tmp\n", "junk.tmp": "no\n"},
              "FROM dybase\nARG WHO=world\nARG EMPTY\nENV APP=/app MODE=${MODE:-prod} GREETING=\"hello ${WHO}\" "
              "ALT=${EMPTY:-fallback} SET=${WHO:+yes}\nRUN echo \"$GREETING $ALT $SET\" > /greeting\nWORKDIR $APP\nCOPY app/ ./\nCOPY top.txt *.tmp* /opt/\n"
              "RUN chmod 755 run.sh && mkdir -p /var/lib/thing && echo hi > /var/lib/thing/f "
              "&& ln -s /app/run.sh /usr/bin/runme && ln /var/lib/thing/f /var/lib/thing/g "
              "&& chmod 4755 /var/lib/thing/f && rm /etc/motd && rm -r /data\n"
              "USER 1000:1000\nEXPOSE 80 53/udp 8000-8001\nLABEL org.example.a=\"one two\" b=2\n"
              "VOLUME [\"/data\", \"/cache\"]\nSTOPSIGNAL SIGUSR1\n"
              "HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD [\"true\"]\nSHELL [\"/bin/sh\", \"-ec\"]\n"
              "ONBUILD RUN echo child\nENTRYPOINT [\"/bin/sh\"]\nCMD [\"-c\", \"echo $APP\"]\n"),
    "multistage": ({"src.txt": "source\n"},
                   "ARG BASE=dybase\nFROM ${BASE} AS build\nCOPY src.txt /src.txt\nRUN mkdir /out && "
                   "tr a-z A-Z < /src.txt > /out/result.txt\n"
                   "FROM dybase AS unused\nRUN echo never > /never\n"
                   "FROM dybase\nCOPY --from=build /out/ /result/\nCOPY --from=0 /src.txt /\nCMD cat /result/result.txt\n"),
    "owners": ({"f.txt": "f\n", "d/one": "1\n", "d/sub/two": "2\n"},
               "FROM dybase\nRUN echo 'app:x:1000:1001::/home/app:/bin/sh' >> /etc/passwd && "
               "echo 'app:x:1001:' >> /etc/group\n"
               "COPY --chown=app:app f.txt /home/app/f.txt\nCOPY --chown=app f.txt /home/app/g.txt\n"
               "COPY --chown=1234 d /owned/\n"
               "COPY --chmod=0750 f.txt /modes/f.txt\nCOPY d/ /plain\nCOPY f.txt /newdir/deep/\n"
               "RUN touch /etc/newfile && mkdir -m 1777 /sticky\n"),
    "onbuild": ({"d/one": "1\n"}, "FROM dybase AS parent\nONBUILD RUN echo triggered > /triggered\n"
                                  "ONBUILD COPY d/one /one\nLABEL kept=yes\nFROM parent\nRUN cat /triggered /one > /both\n"),
    "add-archive": ({}, "FROM dybase AS unpack\nADD payload.tar.gz /unpacked/\nADD payload.tar.gz /kept.tar.gz.d/\n"
                        "RUN ls -R /unpacked > /listing\n"
                        "FROM unpack\nCOPY --from=unpack /unpacked /from-stage\n"),
}


def _payload(path: Path) -> None:
    """A tar.gz with a file, a dir, a symlink and an owner, for ADD's extraction."""
    import io
    src = path.parent / "payload-src"
    (src / "inner").mkdir(parents=True)
    (src / "inner" / "file.txt").write_text("inside\n")
    os.symlink("inner/file.txt", src / "link")
    os.chown(src / "inner" / "file.txt", 42, 43)
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        tar.add(src, arcname=".")
        info = tarfile.TarInfo("with-xattr.txt")
        info.size, info.mode = 3, 0o640
        # a file capability (cap_net_bind_service+ep, VFS v2) and a user xattr
        cap = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0).decode()
        info.pax_headers = {"SCHILY.xattr.user.origin": "archive", "SCHILY.xattr.security.capability": cap}
        tar.addfile(info, io.BytesIO(b"xa\n"))
    shutil.rmtree(src)


@pytest.fixture(scope="module")
def docker(dockerd, base_archive):
    need(os.path.exists(DEBIAN_DOCKER), "needs Debian's docker.io client at /usr/bin/docker")
    env = dict(dockerd.env, DOCKER_BUILDKIT="1")

    def run(*args, check=True):
        result = subprocess.run([DEBIAN_DOCKER, *args], env=env, capture_output=True, text=True, timeout=300)
        if check:
            assert result.returncode == 0, f"docker {' '.join(args)}: {result.stdout}\n{result.stderr}"
        return result
    run("load", "-i", str(base_archive))
    return run


@pytest.fixture(scope="module")
def root(tmp_path_factory, base_archive):
    root = tmp_path_factory.mktemp("build-docker-root") / "root"
    load_base(root, base_archive)
    yield root
    try:
        assert leftovers(root) == []
    finally:
        remove_cgroup_parent()


def _docker_xattrs(entry: tuple) -> tuple:
    if len(entry) < 8:
        return entry
    return entry[:7] + (tuple(x for x in entry[7] if x[0] == "SCHILY.xattr.security.capability"),)


def docker_image(docker, tag: str, work: Path) -> tuple[dict, list[bytes]]:
    out = work / "saved.tar"
    docker("save", "-o", str(out), tag)
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))[0]
        config = json.load(tar.extractfile(manifest["Config"]))
        layers = [tar.extractfile(name).read() for name in manifest["Layers"]]
    out.unlink()
    return config, layers


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_same_tree_and_config_as_docker(docker, root, tmp_path, case):
    files, dockerfile = CORPUS[case]
    ctx = make_context(tmp_path / "ctx", files, dockerfile)
    if case == "add-archive":
        _payload(ctx / "payload.tar.gz")
    if case == "owners":  # docker's context transfer drops xattrs; so does dockyard (BuildKit's rule)
        os.setxattr(ctx / "f.txt", "user.origin", b"context")
    tag = f"cmp-{case}:1"
    docker("build", "--network", "none", "-q", "-t", tag, str(ctx))
    result = run_dockyard(root, "build", "--network", "none", "-q", "-t", tag, str(ctx))
    assert result.returncode == 0, result.stderr
    theirs_config, theirs_layers = docker_image(docker, tag, tmp_path)
    ours_config, ours_layer_paths = image_layers(root, tag)
    ours = flatten([p.read_bytes() for p in ours_layer_paths])
    theirs = flatten(theirs_layers)
    if case == "add-archive":  # dockyard keeps every xattr in its layers ...
        assert ("SCHILY.xattr.user.origin", "archive") in ours["unpacked/with-xattr.txt"][7]
    ours = {k: _docker_xattrs(v) for k, v in ours.items()}  # ... docker 20.10 only security.capability
    only_ours = {k: v for k, v in ours.items() if theirs.get(k) != v}
    only_theirs = {k: v for k, v in theirs.items() if ours.get(k) != v}
    assert only_ours == only_theirs == {}, f"dockyard: {only_ours}\ndocker: {only_theirs}"
    for field in CONFIG_FIELDS:
        assert ours_config["config"].get(field) == theirs_config["config"].get(field), field
    assert (ours_config["os"], ours_config["architecture"]) == (theirs_config["os"], theirs_config["architecture"])
    assert len(ours_config["rootfs"]["diff_ids"]) == len(ours_layer_paths)


def test_pushed_image_runs_under_docker_like_under_dockyard(docker, root, tmp_path, reference_registry):
    ctx = make_context(tmp_path / "ctx", {"msg.txt": "shipped\n"},
                       "FROM dybase\nCOPY msg.txt /msg.txt\nRUN echo built >> /msg.txt\nCMD cat /msg.txt\n")
    ref = f"{reference_registry}/built/app:1"
    result = run_dockyard(root, "build", "--network", "none", "-q", "-t", ref, str(ctx),
                          env={"SOURCE_DATE_EPOCH": "1700000000"})
    assert result.returncode == 0, result.stderr
    ours = run_dockyard(root, "run", "--rm", "--network", "none", ref)
    assert ours.stdout == "shipped\nbuilt\n", ours.stderr
    pushed = run_dockyard(root, "push", ref)
    assert pushed.returncode == 0, pushed.stderr
    docker("pull", ref)
    theirs = docker("run", "--rm", "--network", "none", ref)
    assert theirs.stdout == ours.stdout
    inspect = json.loads(run_dockyard(root, "inspect", ref).stdout)[0]
    digest = docker("image", "inspect", "--format", "{{index .RepoDigests 0}}", ref).stdout.strip()
    assert digest.endswith(inspect["Descriptor"]["digest"])  # the manifest travelled byte for byte

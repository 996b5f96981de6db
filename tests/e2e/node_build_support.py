"""Support for the `dockyard build` e2e tests: a root with the busybox test image loaded, the CLI
as a subprocess, and flattening an image's layers into a comparable file tree.

``flatten(layer_files)`` applies layer tars (gzip or plain) in order, whiteouts included, and
returns {path: (type, mode, uid, gid, size, sha256 of content, link target[, xattrs])}: what the
comparison with docker looks at (mtimes aside). ``hardlink_groups`` keeps which paths share
an inode within a layer.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.e2e.node_images_support import DOCKYARD
from tests.helpers import need, need_root

CGROUP_PARENT = f"dockyard-test-build-{os.getpid()}"
BASE = "dybase:latest"  # a name of our own in the shared dockerd


@pytest.fixture(scope="session")
def base_archive(tmp_path_factory) -> Path:
    """The busybox test image (tests/images.py) as a docker-archive, for `dockyard load` and
    `docker load` alike: both builders start from the same bytes."""
    need_root()
    from tests import images
    need(images.BUSYBOX.exists(), "needs /bin/busybox (apt-get install busybox-static)")
    work = tmp_path_factory.mktemp("build-base")
    image = images.build_busybox_image(work / "layout", "latest")
    return images.docker_archive(image, work / "busybox.tar", BASE)


def run_dockyard(root: Path, *args: str, cwd: Path | None = None, env: dict | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    full_env.update(DOCKYARD_CONFIG=str(Path(root).parent / "dockercfg"), DOCKYARD_CGROUP_PARENT=CGROUP_PARENT,
                    **(env or {}))
    return subprocess.run([str(DOCKYARD), "--root", str(root), *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd)


def make_context(base: Path, files: dict[str, str | bytes], dockerfile: str) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    (base / "Dockerfile").write_text(dockerfile)
    for name, content in files.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return base


def load_base(root: Path, archive: Path) -> None:
    result = run_dockyard(root, "load", "-i", str(archive))
    assert result.returncode == 0, result.stderr


def image_layers(root: Path, ref: str) -> tuple[dict, list[Path]]:
    """(config document, layer blob paths lowest first) of a stored image."""
    doc = json.loads(run_dockyard(root, "inspect", ref).stdout)[0]
    blobs = root / "images" / "content" / "blobs" / "sha256"
    config = json.loads((blobs / doc["Id"].split(":", 1)[1]).read_bytes())
    manifest = json.loads((blobs / doc["Descriptor"]["digest"].split(":", 1)[1]).read_bytes())
    return config, [blobs / l["digest"].split(":", 1)[1] for l in manifest["layers"]]


def _open_layer(data: bytes) -> tarfile.TarFile:
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return tarfile.open(fileobj=io.BytesIO(data))


def flatten(layers: list[bytes]) -> dict[str, tuple]:
    tree: dict[str, tuple] = {}
    for data in layers:
        with _open_layer(data) as tar:
            for m in tar:
                name = m.name[2:] if m.name.startswith("./") else m.name.lstrip("/")
                name = name.rstrip("/") if name not in (".", "") else ""
                if not name:
                    continue
                head, _, base = name.rpartition("/")
                if base == ".wh..wh..opq":
                    for key in [k for k in tree if head and k.startswith(head + "/")]:
                        del tree[key]
                    continue
                if base.startswith(".wh."):
                    gone = f"{head}/{base[4:]}" if head else base[4:]
                    for key in [k for k in tree if k == gone or k.startswith(gone + "/")]:
                        del tree[key]
                    continue
                m.mode &= 0o7777  # Go's tar (docker) also writes the type bits into the mode
                xattrs = tuple(sorted((k, v) for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")))
                if m.isdir() and name in tree and tree[name][0] == "dir":
                    tree[name] = ("dir", m.mode, m.uid, m.gid, 0, "", "")
                    continue
                for key in [k for k in tree if k == name or k.startswith(name + "/")] if not m.isdir() else []:
                    del tree[key]
                if m.isreg():
                    digest = hashlib.sha256(tar.extractfile(m).read()).hexdigest()
                    tree[name] = ("file", m.mode, m.uid, m.gid, m.size, digest, "", xattrs)
                elif m.islnk():
                    target = m.linkname[2:] if m.linkname.startswith("./") else m.linkname.lstrip("/")
                    tree[name] = tree.get(target, ("file",) + (None,) * 6)[:6] + (f"hardlink:{target}", xattrs)
                elif m.issym():
                    tree[name] = ("symlink", 0, m.uid, m.gid, 0, "", m.linkname)
                elif m.isdir():
                    tree[name] = ("dir", m.mode, m.uid, m.gid, 0, "", "")
                else:
                    tree[name] = (f"type{m.type!r}", m.mode, m.uid, m.gid, 0, "", f"{m.devmajor}:{m.devminor}")
    return tree


def leftovers(root: Path) -> list[str]:
    """Build work, containers and mounts a finished build must not leave behind."""
    found = []
    tmp = root / "build" / "tmp"
    if tmp.is_dir() and os.listdir(tmp):
        found.append(f"build/tmp: {os.listdir(tmp)}")
    containers = root / "containers"
    if containers.is_dir():
        found += [f"container {c}" for c in os.listdir(containers) if not c.startswith(".")]
    with open("/proc/self/mountinfo") as f:
        found += [p for p in (line.split()[4] for line in f) if p.startswith(f"{root}/")]
    for parent in Path("/sys/fs/cgroup").glob(f"*/{CGROUP_PARENT}"):
        found += [f"cgroup {c}" for c in parent.iterdir() if c.is_dir()]
    return found


def remove_cgroup_parent() -> None:
    """The (empty) parent cgroup the RUN containers of this session were put under."""
    for d in Path("/sys/fs/cgroup").glob(f"*/{CGROUP_PARENT}"):
        try:
            d.rmdir()
        except OSError:
            pass


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, symlinks=True)

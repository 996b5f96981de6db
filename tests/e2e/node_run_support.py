"""Support for the `dockyard run` tests: a busybox-static image built on the spot, a runner for the
CLI as a subprocess, and the leak checks (mounts, cgroups, processes) every test ends with.

Until node.images can import a local rootfs, the CLI is started through this file as a launcher
(`python node_run_support.py LAYER_DIR IMAGE_CONFIG_JSON -- ARGS...`): it answers the image lookup
for the name "busybox" with the layer built here and then runs node.__main__ unchanged.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable
IMAGE = "busybox"
IMAGE_CONFIG = {
    "Cmd": ["sh"],
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "FROM_IMAGE=yes", "OVERRIDE=image"],
    "WorkingDir": "/",
    "Volumes": {"/seeded": {}},
}
CGROUP_PARENT = f"dockyard-test-{os.getpid()}"


def build_busybox_layer(layer: Path) -> Path:
    """A rootfs with /bin/busybox and its applet links, a passwd/group with a non-root user."""
    (layer / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", layer / "bin" / "busybox")
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", layer / "bin" / applet)
    (layer / "etc").mkdir()
    (layer / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (layer / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nstaff:x:50:app\nnogroup:x:65534:\n")
    for d in ("tmp", "root", "home/app", "seeded"):
        (layer / d).mkdir(parents=True, exist_ok=True)
    os.chmod(layer / "tmp", 0o1777)
    os.chown(layer / "home" / "app", 1000, 1000)
    (layer / "seeded" / "from-image.txt").write_text("seed\n")
    (layer / "etc" / "not-executable").write_text("#!/bin/sh\n")
    return layer


class Dockyard:
    """`dockyard --root ROOT ...` as a subprocess."""

    def __init__(self, root: Path, layer: Path) -> None:
        self.root = root
        self.layer = layer
        self.env = dict(os.environ, DOCKYARD_CGROUP_PARENT=CGROUP_PARENT)

    def argv(self, *args: str) -> list[str]:
        return [PYTHON, __file__, str(self.layer), json.dumps(IMAGE_CONFIG), "--", "--root", str(self.root), *args]

    def __call__(self, *args: str, timeout: float = 60, input: str | None = None, check: bool = False):
        result = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout,
                                input=input, env=self.env, stdin=None if input is not None else subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"dockyard {' '.join(args)} -> {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result

    def out(self, *args: str, **kw) -> str:
        return self(*args, check=True, **kw).stdout

    def inspect(self, ref: str) -> dict:
        return json.loads(self.out("inspect", ref))[0]


def leaks(root: Path, container_id: str | None = None) -> list[str]:
    """Mounts under `root`, cgroups of the container (or of the test parent) and, for the whole
    root, container records and runtime state left behind."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if str(root) in line.split()[4]:
                found.append("mount " + line.split()[4])
    if container_id is None:
        for sub in ("containers", "runtime/runc", "runtime/crun"):
            d = root / sub
            if d.is_dir():
                found += [f"file {d / e}" for e in os.listdir(d) if not e.startswith(".") and e != "runtime.log"]
    base = Path("/sys/fs/cgroup")
    parents = [base / c / CGROUP_PARENT for c in ("memory", "pids", "cpu", "freezer", "devices")] + [base / CGROUP_PARENT]
    for parent in parents:
        if not parent.is_dir():
            continue
        for child in parent.iterdir():
            if child.is_dir() and (container_id is None or child.name == container_id):
                found.append(f"cgroup {child}")
    return found


def remove_cgroup_parent() -> None:
    base = Path("/sys/fs/cgroup")
    for d in list(base.glob(f"*/{CGROUP_PARENT}")) + [base / CGROUP_PARENT]:
        try:
            d.rmdir()
        except OSError:
            pass


def _launch() -> int:
    layer, config = Path(sys.argv[1]), json.loads(sys.argv[2])
    argv = sys.argv[4:]
    sys.path.insert(0, str(REPO))
    import node.cli.containers as containers
    real_image = containers._image
    image = SimpleNamespace(id="sha256:" + "b" * 64, config=SimpleNamespace(config=config),
                            layer_dirs=lambda: [layer], repo_tags=[f"{IMAGE}:latest"])
    containers._image = lambda args: image if args.image in (IMAGE, f"{IMAGE}:latest") else real_image(args)
    from node.__main__ import main
    return main(argv)


if __name__ == "__main__":
    sys.exit(_launch())


# --- pytest fixtures, imported by the test modules that use them -------------------------------
import pytest  # noqa: E402

from tests.helpers import need, need_root, need_tool  # noqa: E402

RUNTIMES = ["builtin", "runc", "crun"]


@pytest.fixture(scope="session")
def busybox_layer(tmp_path_factory):
    need(os.path.exists("/bin/busybox"), "needs busybox-static at /bin/busybox")
    layer = build_busybox_layer(tmp_path_factory.mktemp("image") / "layer")
    yield layer
    remove_cgroup_parent()


@pytest.fixture
def dy(busybox_layer, tmp_path):
    need_root()
    d = Dockyard(tmp_path / "root", busybox_layer)
    yield d
    ids = d("ps", "-aq").stdout.split()
    if ids:
        d("rm", "-f", "-v", *ids)
    assert leaks(d.root) == []


@pytest.fixture(params=RUNTIMES)
def runtime(request):
    if request.param != "builtin":
        need_tool(request.param)
    return request.param

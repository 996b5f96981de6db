"""Support for the `dockyard engine` tests: one engine per test module on a socket under /tmp with
its own --root, the busybox test image loaded into that root's store under a unique tag, and
the docker CLI (or any client) pointed at it.

``engine`` (module fixture) -> ``Engine``: ``.socket``, ``.root``, ``.image`` (its tag),
``.env`` (DOCKER_HOST & co), ``.docker(*args)`` (the docker CLI, CompletedProcess),
``.dockyard(*args)`` (the node's own CLI on the same root), ``.request(method, path, body)``
(raw HTTP over the socket -> (status, headers, body bytes)), ``.log``.
At teardown every container is removed, the engine stopped by PID, and nothing may be left
behind: no mount under the root, no cgroup of the test parent.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.node_run_support import CGROUP_PARENT, REPO, leaks, remove_cgroup_parent
from tests.helpers import need, need_root, need_tool, purge_networks
from tests.procs import start_process, stop_process, unmount_below, wait_until

DOCKYARD = REPO / ".venv" / "bin" / "dockyard"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


@dataclass
class Engine:
    base: Path
    root: Path
    socket: Path
    image: str
    log: Path
    env: dict
    proc: subprocess.Popen | None = None

    def docker(self, *args: str, timeout: float = 60, input: str | None = None, check: bool = False):
        r = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, env=self.env,
                           input=input, stdin=None if input is not None else subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def dockyard(self, *args: str, timeout: float = 60, check: bool = False):
        r = subprocess.run([str(DOCKYARD), "--root", str(self.root), *args], capture_output=True, text=True,
                           timeout=timeout, env=self.env, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError(f"dockyard {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def request(self, method: str, path: str, body: bytes | str | dict | None = None,
                headers: dict | None = None) -> tuple[int, dict, bytes]:
        conn = _UnixConnection(str(self.socket))
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def start_engine(base: Path, root: Path, env: dict) -> subprocess.Popen:
    sock = base / "docker.sock"
    log = base / "engine.log"
    proc = start_process([str(DOCKYARD), "--root", str(root), "engine", "-H", f"unix://{sock}"], log, env=env)
    wait_until(lambda: sock.exists() and _pings(sock), 30, proc, "dockyard engine", log)
    return proc


def _pings(sock: Path) -> bool:
    try:
        conn = _UnixConnection(str(sock), timeout=2)
        conn.request("GET", "/_ping")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


@pytest.fixture(scope="module")
def engine(busybox_image_dir):
    from tests import images
    need_root()
    need_tool("docker")
    need(DOCKYARD.exists(), f"needs {DOCKYARD} (make venv)")
    base = Path(tempfile.mkdtemp(prefix="dy-eapi-", dir="/tmp"))  # a short path: sun_path is 108 bytes
    os.chmod(base, 0o711)  # others may reach the socket: only its own mode keeps them out
    root = base / "root"
    image = f"{unique('eapi')}:latest"
    (base / "cli").mkdir()
    env = dict(os.environ, DOCKYARD_CGROUP_PARENT=CGROUP_PARENT, DOCKER_HOST=f"unix://{base / 'docker.sock'}",
               DOCKER_CONFIG=str(base / "cli"), DOCKER_CLI_HINTS="false", DOCKER_BUILDKIT="0")
    archive = images.docker_archive(busybox_image_dir, base / "image.tar", image)
    subprocess.run([str(DOCKYARD), "--root", str(root), "load", "-q", "-i", str(archive)], check=True,
                   capture_output=True, env=env, timeout=60)
    eng = Engine(base, root, base / "docker.sock", image, base / "engine.log", env)
    eng.proc = start_engine(base, root, env)
    try:
        yield eng
    finally:
        ids = eng.dockyard("ps", "-aq").stdout.split()
        if ids:
            eng.dockyard("rm", "-f", "-v", *ids)
        stop_process(eng.proc)
        purge_networks(root)  # the default bridge outlives its containers, like docker0
        left = leaks(root)
        unmount_below(base)
        remove_cgroup_parent()
        shutil.rmtree(base, ignore_errors=True)
        assert left == [], left

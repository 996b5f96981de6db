"""Real servers for the tests, started privately and stopped by their PID (a pytest plugin).

Fixtures (load with ``pytest_plugins = ["tests.servers"]``, done in tests/conftest.py):

``dockerd`` (session) -> ``Docker``
    A private Docker engine: its own containerd, data root, exec root, pid file and unix socket
    under /tmp, no iptables, no bridge. ``docker.env`` is os.environ plus DOCKER_HOST (and a
    private DOCKER_CONFIG); ``docker.run(*args, check=True, timeout=...)`` runs the docker CLI
    against it and returns the CompletedProcess (text, stdout/stderr captured).
``postgres_server`` (session) -> ``Postgres``
    Debian's PostgreSQL 15 running as user ``postgres`` on a free port of 127.0.0.1 with a
    private data and socket dir, trust auth, fsync off. ``.port``, ``.sql(statement)``.
``postgres_url`` (function) -> str
    A fresh empty database on that server: ``postgresql+asyncpg://postgres@127.0.0.1:PORT/DB``;
    dropped (WITH FORCE) after the test.
``busybox_rootfs_dir``, ``busybox_image_dir`` (session)
    Test images from busybox-static; see tests/images.py.
``reference_registry`` (session) -> str
    CNCF distribution 2.8.2 (Debian's ``docker-registry``), filesystem storage in tmp, deletes
    enabled; the value is ``"127.0.0.1:PORT"``.
``dockyard_registry`` (function) -> factory
    ``dockyard_registry(database_url=None, data_dir=None, args=(), env=None) -> DockyardRegistry``
    starts ``.venv/bin/dockyard-registry serve`` as a user would and waits for ``GET /v2/``.
    The object has ``.host`` ("127.0.0.1:PORT"), ``.url``, ``.pid``, ``.data_dir``,
    ``.database_url``, ``.log`` (path), ``.stop()``, ``.kill()`` (SIGKILL), ``.restart()``.
    Every registry the factory started is stopped at teardown.
``shared_dockyard_registry`` (session) -> ``DockyardRegistry``
    One registry on SQLite for the whole session; use repository names unique to the test.

Processes are started and stopped by tests/procs.py, which also stops, at exit, whatever an
interrupted session (Ctrl-C, SIGTERM, a crash in a finalizer) left running.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.helpers import free_port, need, need_root, need_tool, wait_for_port
from tests.procs import (_RUNNING, _stop_leftovers, http_status, log_tail, pid_alive, private_dir,  # noqa: F401
                         start_process, stop_process, unmount_below, wait_pid_gone, wait_until)

PG_BIN = Path("/usr/lib/postgresql/15/bin")
REPO_ROOT = Path(__file__).resolve().parent.parent
REGISTRY_BIN = REPO_ROOT / ".venv" / "bin" / "dockyard-registry"

# -- Docker ------------------------------------------------------------------------------------

@dataclass
class Docker:
    socket: Path
    env: dict[str, str]
    root: Path
    log: Path

    def run(self, *args: str, check: bool = True, timeout: float = 300, input: str | None = None,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        env = dict(self.env, **(extra_env or {}))
        r = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=timeout,
                           input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}\n"
                                 f"-- dockerd log tail ({self.log}):\n{log_tail(self.log, 20)}")
        return r


def _containerd_config(root: Path) -> Path:
    # A containerd of our own: dockerd would otherwise share any containerd found at the
    # default /run/containerd socket (another session's), and a shared "moby" namespace mixes
    # two engines' containers.
    cfg = root / "containerd.toml"
    cfg.write_text(
        "version = 2\n"
        f'root = "{root}/containerd/root"\n'
        f'state = "{root}/containerd/state"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        "[grpc]\n"
        f'  address = "{root}/containerd.sock"\n'
        "[ttrpc]\n"
        f'  address = "{root}/containerd.sock.ttrpc"\n'
        "[debug]\n"
        '  address = ""\n'
        "[metrics]\n"
        '  address = ""\n'
    )
    return cfg


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Docker]:
    need_root()
    need_tool("dockerd", "docker", "containerd")
    root = private_dir("tsrv-docker-")
    log = root / "dockerd.log"
    ctd_log = root / "containerd.log"
    procs: list[subprocess.Popen] = []
    try:
        ctd = start_process(["containerd", "--config", str(_containerd_config(root))], ctd_log)
        procs.append(ctd)
        wait_until(lambda: (root / "containerd.sock").exists(), 30, ctd, "containerd", ctd_log)
        sock = root / "docker.sock"
        # An empty daemon config of our own: a host /etc/docker/daemon.json (say with "hosts")
        # would otherwise conflict with the flags below.
        (root / "daemon.json").write_text("{}")
        proc = start_process([
            "dockerd", "--config-file", str(root / "daemon.json"),
            "--iptables=false", "--ip-forward=false", "--bridge=none", "--ip-masq=false",
            "--containerd", str(root / "containerd.sock"),
            "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
            "--pidfile", str(root / "dockerd.pid"), "-H", f"unix://{sock}",
        ], log)
        procs.append(proc)
        (root / "cli").mkdir()
        env = dict(os.environ, DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=str(root / "cli"),
                   DOCKER_BUILDKIT="0", DOCKER_CLI_HINTS="false")
        docker = Docker(sock, env, root, log)

        def ready() -> bool:
            return sock.exists() and docker.run("info", check=False, timeout=20).returncode == 0

        wait_until(ready, 60, proc, "dockerd", log)
        yield docker
    finally:
        for p in reversed(procs):
            stop_process(p, timeout=20)
        unmount_below(root)
        shutil.rmtree(root, ignore_errors=True)


# -- PostgreSQL --------------------------------------------------------------------------------

@dataclass
class Postgres:
    port: int
    socket_dir: Path
    root: Path

    def sql(self, statement: str, database: str = "postgres") -> str:
        r = subprocess.run([str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                            "-d", database, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", statement],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"psql {statement!r}: {r.stderr}")
        return r.stdout

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    need_root()
    need((PG_BIN / "postgres").exists(), "needs PostgreSQL 15 (apt-get install postgresql)")
    need_tool("runuser")
    root = private_dir("tsrv-pg-")
    shutil.chown(root, "postgres", "postgres")
    data, sockdir, log = root / "data", root / "sock", root / "postgres.log"
    sockdir.mkdir()
    shutil.chown(sockdir, "postgres", "postgres")
    log.touch()
    shutil.chown(log, "postgres", "postgres")
    init = subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(data),
                           "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
                          capture_output=True, text=True, timeout=120)
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
    port = free_port()
    proc = start_process(["runuser", "-u", "postgres", "--", str(PG_BIN / "postgres"), "-D", str(data),
                          "-p", str(port), "-k", str(sockdir), "-c", "listen_addresses=127.0.0.1",
                          "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                          "-c", "max_connections=300"], log)
    server = Postgres(port, sockdir, root)
    try:
        wait_until(lambda: (sockdir / f".s.PGSQL.{port}").exists(), 60, proc, "postgres", log)
        wait_for_port(port, timeout=30)
        # The port opens before recovery ends ("the database system is starting up"): wait
        # until it answers a query, or the first test of a loaded machine fails for nothing.
        wait_until(lambda: subprocess.run([str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"],
                                          timeout=10).returncode == 0, 60, proc, "postgres", log)
        yield server
    finally:
        # runuser forwards SIGTERM to postgres ("smart" shutdown); fall back to the
        # postmaster's own pid if runuser is gone first.
        pm_pid = _read_postmaster_pid(data)
        stop_process(proc, timeout=20)
        if pm_pid and pid_alive(pm_pid):
            os.kill(pm_pid, signal.SIGQUIT)
            wait_pid_gone(pm_pid, 10)
        shutil.rmtree(root, ignore_errors=True)


def _read_postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@pytest.fixture
def postgres_url(postgres_server: Postgres) -> Iterator[str]:
    name = "t_" + uuid.uuid4().hex[:16]
    postgres_server.sql(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- CNCF distribution (the reference registry) ------------------------------------------------

@pytest.fixture(scope="session")
def reference_registry() -> Iterator[str]:
    need_tool("docker-registry")
    root = private_dir("tsrv-ref-")
    port = free_port()
    config = root / "config.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root / "storage")}, "delete": {"enabled": True},
                    "cache": {"blobdescriptor": "inmemory"}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }))
    log = root / "registry.log"
    proc = start_process(["docker-registry", "serve", str(config)], log)
    try:
        wait_until(lambda: http_status(f"http://127.0.0.1:{port}/v2/") == 200, 30, proc, "docker-registry", log)
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(proc)
        shutil.rmtree(root, ignore_errors=True)


# -- dockyard-registry, as a user starts it ----------------------------------------------------

@dataclass
class DockyardRegistry:
    data_dir: Path
    database_url: str | None
    args: tuple[str, ...] = ()
    env: dict[str, str] | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    @property
    def log(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def start(self, timeout: float = 60) -> "DockyardRegistry":
        argv = [str(REGISTRY_BIN), "serve", "--listen", self.host, "--data-dir", str(self.data_dir)]
        if self.database_url:
            argv += ["--database-url", self.database_url]
        self.proc = start_process([*argv, *self.args], self.log, env=dict(os.environ, **(self.env or {})))
        wait_until(lambda: http_status(f"{self.url}/v2/") in (200, 401), timeout, self.proc,
                   "dockyard-registry", self.log)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers run, as in a power cut of the process."""
        if self.proc is not None:
            stop_process(self.proc, sig=signal.SIGKILL)

    def restart(self) -> "DockyardRegistry":
        self.stop()
        return self.start()

    def peak_rss_kib(self) -> int:
        """VmHWM of the server process (its peak resident set), in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise RuntimeError("no VmHWM")


@pytest.fixture
def dockyard_registry(tmp_path_factory) -> Iterator[Callable[..., DockyardRegistry]]:
    need(REGISTRY_BIN.exists(), f"needs {REGISTRY_BIN} (make venv)")
    started: list[DockyardRegistry] = []

    def start(database_url: str | None = None, data_dir: str | Path | None = None,
              args: tuple[str, ...] | list[str] = (), env: dict[str, str] | None = None) -> DockyardRegistry:
        d = Path(data_dir) if data_dir else tmp_path_factory.mktemp("dockyard") / "data"
        reg = DockyardRegistry(d, database_url, tuple(args), env)
        started.append(reg)
        return reg.start()

    try:
        yield start
    finally:
        for reg in started:
            reg.stop()


@pytest.fixture(scope="session")
def shared_dockyard_registry(tmp_path_factory) -> Iterator[DockyardRegistry]:
    """One dockyard-registry on SQLite for the whole session (for tests that only need *a*
    registry, e.g. the node's client): use repository names unique to your test."""
    need(REGISTRY_BIN.exists(), f"needs {REGISTRY_BIN} (make venv)")
    reg = DockyardRegistry(tmp_path_factory.mktemp("dockyard-shared") / "data", None)
    try:
        yield reg.start()
    finally:
        reg.stop()


def pytest_configure(config) -> None:  # noqa: ARG001 - pytest hook signature
    # A CI timeout or `kill` sends SIGTERM: turn it into KeyboardInterrupt so pytest still runs
    # the fixture finalizers (and the atexit guard) instead of leaving daemons behind.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm)


def _sigterm(signum, frame):  # noqa: ARG001
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise KeyboardInterrupt("SIGTERM")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus) -> None:  # noqa: ARG001 - pytest hook signature
    # Fixture finalizers normally empty the table; this catches what an interrupted run left.
    if _RUNNING:
        print(f"\ntests.servers: stopping {len(_RUNNING)} leftover server(s)", file=sys.stderr)
        _stop_leftovers()


# -- test images (tests/images.py) -------------------------------------------------------------

@pytest.fixture(scope="session")
def busybox_rootfs_dir(tmp_path_factory) -> Path:
    from tests import images

    need(images.BUSYBOX.exists(), "needs /bin/busybox (apt-get install busybox-static)")
    return images.busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture(scope="session")
def busybox_image_dir(tmp_path_factory):
    """An OCI layout holding a three-layer busybox image tagged ``latest`` (tests.images.OciImage)."""
    from tests import images

    need(images.BUSYBOX.exists(), "needs /bin/busybox (apt-get install busybox-static)")
    return images.build_busybox_image(tmp_path_factory.mktemp("busybox-oci") / "layout", "latest")

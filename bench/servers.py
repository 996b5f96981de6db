"""The servers a benchmark measures, each started on a free loopback port and stopped by PID.

- Dockyard's registry exactly as a user starts it: `dockyard-registry serve --listen --data-dir`
  (SQLite index and filesystem storage, the defaults).
- The reference, CNCF distribution 2.8.2 (Debian's `docker-registry serve CONFIG.yml`) with the
  Debian package's own settings (filesystem storage, in-memory blob descriptor cache, deletes on)
  minus auth, with the access log off as Dockyard's is.
- A private Docker engine (dockerd with its own data root, exec root, pid file and socket).
- bench.staticserver, the loopback ceiling for moving bytes over HTTP.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.procs import Processes, free_port, python, venv_tool, wait_for_path, wait_for_port

DISTRIBUTION_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
"""


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen
    data: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


def start_dockyard_registry(procs: Processes, work: Path, database_url: str | None = None) -> Server:
    port = free_port()
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    argv = [venv_tool("dockyard-registry"), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data)]
    if database_url:
        argv += ["--database-url", database_url]
    proc = procs.start(argv, work / "registry.log")
    wait_for_port(port, proc)
    return Server("dockyard-registry", port, proc, data)


def start_distribution(procs: Processes, work: Path) -> Server:
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RuntimeError("docker-registry (CNCF distribution) is not installed")
    port = free_port()
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    config = work / "config.yml"
    config.write_text(DISTRIBUTION_CONFIG.format(root=data, port=port))
    proc = procs.start([binary, "serve", str(config)], work / "registry.log")
    wait_for_port(port, proc)
    return Server("distribution", port, proc, data)


def start_static(procs: Processes, work: Path, blob: Path) -> Server:
    port = free_port()
    proc = procs.start([python(), "-m", "bench.staticserver", str(port), str(blob)], work / "static.log",
                       cwd=str(Path(__file__).resolve().parents[1]))
    wait_for_port(port, proc)
    return Server("static", port, proc, work)


# containers of the private dockerd go below this cgroup, removed after the run (not "docker",
# which other dockerds on the machine may share)
DOCKER_CGROUP_PARENT = f"dockyard-bench-docker-{os.getpid()}"


@dataclass
class Dockerd:
    proc: subprocess.Popen
    socket: Path
    root: Path

    def argv(self, *args: str) -> list[str]:
        return ["docker", "-H", f"unix://{self.socket}", *args]

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {result.stderr.strip()[-300:]}")
        return result


def start_dockerd(procs: Processes, work: Path) -> Dockerd:
    """dockerd on a private socket and data root; no iptables, no bridge: it touches no network."""
    if shutil.which("dockerd") is None:
        raise RuntimeError("dockerd is not installed")
    sock = work / "docker.sock"
    # unix socket paths are limited to 107 bytes; containerd's go below exec-root, deeper still
    if len(str(work / "exec" / "containerd" / "containerd.sock.ttrpc")) > 100:
        raise RuntimeError(f"scratch path too long for dockerd's unix sockets: {work} (use a shorter --scratch-dir)")
    argv = ["dockerd", "--iptables=false", "--ip-forward=false", "--bridge=none", "--ip-masq=false",
            "--data-root", str(work / "data"), "--exec-root", str(work / "exec"),
            "--pidfile", str(work / "docker.pid"), "-H", f"unix://{sock}", "--log-level", "error",
            "--cgroup-parent", DOCKER_CGROUP_PARENT]
    proc = procs.start(argv, work / "dockerd.log", env=dict(os.environ, DOCKER_CONFIG=str(work / "client")))
    return await_dockerd(proc, sock, work, "dockerd")


def await_dockerd(proc, sock: Path, work: Path, what: str) -> Dockerd:
    """The started dockerd once it answers `docker version` (its log is work/dockerd.log)."""
    wait_for_path(sock, proc)
    daemon = Dockerd(proc, sock, work)
    for _ in range(200):
        if daemon.run("version", check=False).returncode == 0:
            return daemon
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer: see {work / 'dockerd.log'}")

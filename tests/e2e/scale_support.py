"""A scaled-out registry for the tests: N dockyard-registry replicas on one PostgreSQL database
and one S3 prefix (SeaweedFS), behind Debian's nginx-light doing plain round robin.

``Cluster.start(...)`` migrates the database once (``dockyard-registry migrate``), starts the
replicas with ``auto_migrate: false`` exactly as deploy/scale-out.md says, then nginx; ``stop()``
stops them all by PID. nginx's access log records which replica served each request.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench.s3_servers import nginx_config
from tests.helpers import free_port
from tests.procs import http_status, private_dir, start_process, stop_process, wait_until
from tests.servers import REGISTRY_BIN, DockyardRegistry

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass
class Cluster:
    root: Path
    database_url: str
    env: dict[str, str]
    replicas: list[DockyardRegistry] = field(default_factory=list)
    nginx: subprocess.Popen | None = None
    port: int = field(default_factory=free_port)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @classmethod
    def start(cls, database_url: str, env: dict[str, str], n: int = 3) -> "Cluster":
        root = private_dir("tsrv-scale-")
        cluster = cls(root, database_url, dict(env, DOCKYARD_REGISTRY_AUTO_MIGRATE="false"))
        try:
            r = subprocess.run([str(REGISTRY_BIN), "migrate", "--database-url", database_url],
                               env=env, capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stderr
            for i in range(n):
                cluster.add_replica()
            cluster.start_nginx()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def add_replica(self, **extra_env: str) -> DockyardRegistry:
        i = len(self.replicas)
        reg = DockyardRegistry(self.root / f"replica{i}" / "data", self.database_url, (),
                               dict(self.env, **extra_env))
        reg.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.replicas.append(reg)
        return reg.start()

    def start_nginx(self) -> None:
        conf = self.root / "nginx.conf"
        conf.write_text(nginx_config(self.root, self.port, [r.host for r in self.replicas]))
        log = self.root / "nginx.log"
        self.nginx = start_process([NGINX, "-p", str(self.root), "-c", str(conf), "-g", "daemon off;"], log)
        wait_until(lambda: http_status(f"{self.url}/v2/") == 200, 30, self.nginx, "nginx", log)

    def served_by(self) -> list[tuple[str, str, str]]:
        """(method, uri, upstream) of every request nginx passed on, in order."""
        out = []
        for line in (self.root / "access.log").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 4:
                out.append((parts[0], parts[1], parts[3]))
        return out

    def data_dir_bytes(self) -> list[int]:
        sizes = []
        for reg in self.replicas:
            total = 0
            for dirpath, _, files in os.walk(reg.data_dir):
                for f in files:
                    try:
                        total += os.lstat(os.path.join(dirpath, f)).st_size
                    except OSError:
                        pass
            sizes.append(total)
        return sizes

    def stop(self) -> None:
        if self.nginx is not None:
            stop_process(self.nginx)
        for reg in self.replicas:
            reg.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# -- a small HTTP client ---------------------------------------------------------------------------

def http(method: str, url: str, data: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002 - urllib's signature
        return None


def http_no_redirect(url: str) -> tuple[int, dict[str, str]]:
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=30) as r:
            return r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"

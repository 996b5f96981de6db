"""dockyard-registry with auth behind its own TLS, and the node agent against it.

TLS: a CA and a server certificate for 127.0.0.1 made in the test; the registry serves HTTPS
from ``auth.tls_cert``/``tls_key``; clients trust the CA the way Docker's certs.d does
(a directory holding ``ca.crt``: skopeo's ``--cert-dir`` reads the same layout as
``/etc/docker/certs.d/HOST:PORT/``), and refuse the server without it.
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import re
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.node_images_support import DOCKYARD, dockyard
from tests.e2e.test_registry_auth import auth_registry, cli  # noqa: F401 - auth_registry is a fixture
from tests.helpers import free_port, need, need_root, need_tool, wait_for_port
from tests.servers import REGISTRY_BIN, start_process, stop_process

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def _cert(subject: str, issuer_key, issuer_name, key, ca: bool, san_ip: str | None = None):
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san_ip:
        b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(san_ip))]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def make_ca_and_server(d: Path) -> tuple[Path, Path, Path]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("dockyard test CA", ca_key, None, ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert("127.0.0.1", ca_key, ca.subject, key, False, "127.0.0.1")
    d.mkdir(parents=True, exist_ok=True)
    (d / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (d / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    (d / "server.key").chmod(0o600)
    return d / "ca.crt", d / "server.crt", d / "server.key"


@pytest.fixture
def tls_registry(tmp_path):
    need(REGISTRY_BIN.exists(), f"needs {REGISTRY_BIN} (make venv)")
    ca, cert, key = make_ca_and_server(tmp_path / "pki")
    config = tmp_path / "registry.yml"
    config.write_text(f"auth:\n  mode: token\n  tls_cert: {cert}\n  tls_key: {key}\n"
                      "  rules:\n    - {pattern: 'team-a/*', users: [alice], actions: [pull, push]}\n")
    data = tmp_path / "data"
    cli(data, config, "user", "add", "alice", "--password-stdin", input="alicepw-1\n")
    port = free_port()
    log = tmp_path / "registry.log"
    proc = start_process([str(REGISTRY_BIN), "serve", "--config", str(config), "--data-dir", str(data),
                          "--listen", f"127.0.0.1:{port}"], log)
    try:
        wait_for_port(port)
        yield f"127.0.0.1:{port}", ca, log
    finally:
        stop_process(proc)


def test_https_challenge_and_certs_d_layout(tls_registry, busybox_image_dir, tmp_path):
    host, ca, log = tls_registry
    ctx = ssl.create_default_context(cafile=str(ca))
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"https://{host}/v2/", context=ctx, timeout=10)
    assert e.value.code == 401
    assert e.value.headers["WWW-Authenticate"] == f'Bearer realm="https://{host}/token",service="dockyard"'
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(f"https://{host}/v2/", context=ssl.create_default_context(), timeout=10)
    assert "https://" in log.read_text()

    need_tool("skopeo")
    certs_d = tmp_path / "certs.d" / host  # what /etc/docker/certs.d/HOST:PORT/ holds
    certs_d.mkdir(parents=True)
    (certs_d / "ca.crt").write_bytes(ca.read_bytes())
    dest = f"docker://{host}/team-a/tls:1"
    r = subprocess.run(["skopeo", "copy", "-q", "--dest-creds", "alice:alicepw-1", busybox_image_dir.ref, dest],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "certificate" in r.stderr, r.stderr
    r = subprocess.run(["skopeo", "copy", "-q", "--dest-cert-dir", str(certs_d), "--dest-creds", "alice:alicepw-1",
                        busybox_image_dir.ref, dest], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["skopeo", "inspect", "--cert-dir", str(certs_d), "--creds", "alice:alicepw-1", dest],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Digest"] == busybox_image_dir.manifest.digest


def test_node_login_push_pull(auth_registry, busybox_image_dir, tmp_path):  # noqa: F811 - fixture
    need(DOCKYARD.exists(), f"needs {DOCKYARD} (make venv)")
    need_root()  # unpacking layers (whiteouts) in the node's store
    need_tool("skopeo")
    host = auth_registry.host
    cfg, root = tmp_path / "cfg", tmp_path / "root"
    repo = f"team-a/node{uuid.uuid4().hex[:6]}"
    src = f"{host}/public/node-src:1"
    # an admin seeds a public image with skopeo; the node pulls it anonymously
    r = subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", "--dest-creds", "root:rootpw-1",
                        busybox_image_dir.ref, f"docker://{src}"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    r = dockyard(root, "pull", "-q", src, config=cfg)
    assert r.returncode == 0, r.stderr
    dst = f"{host}/{repo}:1"
    assert dockyard(root, "tag", src, dst, config=cfg).returncode == 0
    r = dockyard(root, "push", dst, config=cfg)
    assert r.returncode != 0
    r = dockyard(root, "login", host, "-u", "reader", "--password-stdin", config=cfg, input="readerpw-1\n")
    assert r.returncode == 0 and "Login Succeeded" in r.stdout, r.stderr
    r = dockyard(root, "push", dst, config=cfg)
    assert r.returncode != 0 and re.search("denied", r.stderr, re.I), r.stderr
    r = dockyard(root, "login", host, "-u", "alice", "--password-stdin", config=cfg, input="alicepw-1\n")
    assert r.returncode == 0, r.stderr
    r = dockyard(root, "push", dst, config=cfg)
    assert r.returncode == 0 and busybox_image_dir.manifest.digest in r.stdout, r.stdout + r.stderr
    r = dockyard(tmp_path / "fresh", "pull", dst, config=cfg)
    assert r.returncode == 0, r.stderr
    assert dockyard(root, "logout", host, config=cfg).returncode == 0
    r = dockyard(tmp_path / "third", "pull", dst, config=cfg)
    assert r.returncode != 0

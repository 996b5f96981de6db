"""The command line as a user runs it: serve (and restart), migrate, check-config, gc."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from oci.digest import Digest
from tests.helpers import free_port, wait_for_port

CLI = [sys.executable, "-m", "registry"]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=180,
                          env={**os.environ, **(env or {})})


def _request(method: str, url: str, data: bytes | None = None, headers: dict | None = None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class Server:
    def __init__(self, data_dir: str, database_url: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", data_dir, "--database-url", database_url],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            wait_for_port(self.port, timeout=90)
        except TimeoutError:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def server_factory(tmp_path, index_url):
    servers: list[Server] = []

    def start() -> Server:
        s = Server(str(tmp_path / "data"), index_url)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop(signal.SIGKILL)


def test_serve_and_restart_keep_uploads_blobs_and_tags(server_factory):
    s = server_factory()
    status, headers, _ = _request("GET", f"{s.url}/v2/")
    assert status == 200 and headers["Docker-Distribution-API-Version"] == "registry/2.0"
    data = b"layer bytes" * 1000
    digest = str(Digest.of(data))
    status, headers, _ = _request("POST", f"{s.url}/v2/cli/app/blobs/uploads/")
    assert status == 202
    location = headers["Location"]
    status, headers, _ = _request("PATCH", s.url + location, data[:5000], {"Content-Range": "0-4999"})
    assert status == 202
    cfg = b'{"architecture":"amd64","os":"linux"}'
    _request("POST", f"{s.url}/v2/cli/app/blobs/uploads/?digest={Digest.of(cfg)}", cfg)
    s.stop(signal.SIGKILL)  # no clean shutdown

    s = server_factory()
    status, headers, _ = _request("GET", s.url + location)
    assert status == 204 and headers["Range"] == "0-4999"
    status, _, _ = _request("PUT", f"{s.url}{location}?digest={digest}", data[5000:])
    assert status == 201
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": str(Digest.of(cfg)), "size": len(cfg)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": len(data)}],
    }).encode()
    status, _, body = _request("PUT", f"{s.url}/v2/cli/app/manifests/v1", manifest,
                               {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert status == 201, body
    s.stop()

    s = server_factory()
    status, _, body = _request("GET", f"{s.url}/v2/cli/app/manifests/v1")
    assert status == 200 and body == manifest
    status, _, body = _request("GET", f"{s.url}/v2/cli/app/blobs/{digest}")
    assert body == data


def test_migrate_is_idempotent_and_check_config(tmp_path, index_url):
    outputs = []
    for _ in range(2):
        r = _run("migrate", "--data-dir", str(tmp_path), "--database-url", index_url)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("database is at revision 0")
        outputs.append(r.stdout)
    assert outputs[0] == outputs[1]
    r = _run("check-config", "--data-dir", str(tmp_path), env={"DOCKYARD_REGISTRY_LISTEN": "0.0.0.0:7000"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["listen"] == "0.0.0.0:7000"
    bad = tmp_path / "bad.yml"
    bad.write_text("delete_enabled: perhaps\n")
    r = _run("check-config", "--config", str(bad))
    assert r.returncode == 2
    assert "delete_enabled" in r.stderr and "Traceback" not in r.stderr
    r = _run("serve", "--listen", "nonsense")
    assert r.returncode == 2 and "listen" in r.stderr


def test_gc_command(tmp_path, index_url):
    r = _run("gc", "--data-dir", str(tmp_path), "--database-url", index_url, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "would remove 0 blob(s)" in r.stdout
    r = _run("fsck", "--data-dir", str(tmp_path), "--database-url", index_url)
    assert r.returncode == 0, r.stderr
    assert "0 problem(s)" in r.stdout

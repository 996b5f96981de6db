"""Credentials file semantics (docker-compatible) and challenge parsing; which hosts get HTTP."""
from __future__ import annotations

import base64
import json
import stat

import pytest

from node.images import auth
from node.images.client import is_insecure


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKYARD_CONFIG", str(tmp_path / "cfg"))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    return tmp_path / "cfg" / "config.json"


def test_store_lookup_erase_keeps_other_keys(cfg):
    cfg.parent.mkdir()
    cfg.write_text(json.dumps({"proxies": {"x": 1}, "auths": {"other:1": {"auth": "b3RoZXI6cHc="}}}))
    auth.store("127.0.0.1:5000", auth.Credentials("alice", "pa:ss"))
    doc = json.loads(cfg.read_text())
    assert doc["proxies"] == {"x": 1} and "other:1" in doc["auths"]
    assert base64.b64decode(doc["auths"]["127.0.0.1:5000"]["auth"]) == b"alice:pa:ss"
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    assert auth.lookup("127.0.0.1:5000") == auth.Credentials("alice", "pa:ss")
    assert auth.lookup("other:1") == auth.Credentials("other", "pw")
    assert auth.lookup("nowhere:1") is None
    assert auth.erase("127.0.0.1:5000") and not auth.erase("127.0.0.1:5000")
    assert auth.lookup("127.0.0.1:5000") is None and auth.lookup("other:1") is not None


def test_docker_hub_and_url_keys(cfg):
    cfg.parent.mkdir()
    cfg.write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()},
        "https://reg.example:443": {"username": "u", "password": "p"}}}))
    assert auth.lookup("docker.io") == auth.Credentials("hub", "pw")
    assert auth.lookup("reg.example:443") == auth.Credentials("u", "p")


def test_docker_config_dir_is_the_fallback(tmp_path, monkeypatch):
    monkeypatch.delenv("DOCKYARD_CONFIG", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "d"))
    assert auth.config_path() == tmp_path / "d" / "config.json"


def test_parse_challenge():
    scheme, params = auth.parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.example/token", "service": "registry.example",
                      "scope": "repository:a/b:pull,push"}
    assert auth.parse_challenge('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})


def test_plain_http_only_for_loopback_and_listed(monkeypatch):
    monkeypatch.setenv("DOCKYARD_INSECURE_REGISTRIES", "lab.internal:5000, other.lan")
    assert is_insecure("127.0.0.1:5000") and is_insecure("127.3.4.5") and is_insecure("localhost:1")
    assert is_insecure("[::1]:5000")
    assert is_insecure("lab.internal:5000") and is_insecure("other.lan:443")
    assert not is_insecure("lab.internal:5001") and not is_insecure("registry.example")
    assert not is_insecure("10.0.0.1:5000")
    monkeypatch.setenv("DOCKYARD_TLS_REGISTRIES", "127.0.0.1:5443")
    assert not is_insecure("127.0.0.1:5443") and is_insecure("127.0.0.1:5000")


def test_identity_token_from_docker_login(cfg):
    # `docker login` to a token-mode registry keeps the refresh token and drops the password.
    cfg.parent.mkdir()
    cfg.write_text(json.dumps({"auths": {"reg:1": {"auth": base64.b64encode(b"alice:").decode(),
                                                   "identitytoken": "refresh-123"}}}))
    assert auth.lookup("reg:1") == auth.Credentials("alice", "", "refresh-123")


def test_entry_without_a_secret_is_no_credentials(cfg):
    cfg.parent.mkdir()
    cfg.write_text(json.dumps({"auths": {"reg:1": {}, "reg:2": {"auth": base64.b64encode(b"bob:").decode()}}}))
    assert auth.lookup("reg:1") is None and auth.lookup("reg:2") is None


def test_store_and_erase_go_through_the_helper(cfg, tmp_path, monkeypatch):
    bindir, kept = tmp_path / "bin", tmp_path / "kept"
    bindir.mkdir()
    helper = bindir / "docker-credential-file"
    helper.write_text(f"#!/bin/sh\ncase $1 in store) cat > {kept};; get) cat {kept};; erase) rm {kept};; esac\n")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    cfg.parent.mkdir()
    cfg.write_text(json.dumps({"credsStore": "file"}))
    auth.store("reg:1", auth.Credentials("alice", "pw"))
    assert json.loads(cfg.read_text())["auths"] == {"reg:1": {}}   # no secret in the file
    assert json.loads(kept.read_text()) == {"ServerURL": "reg:1", "Username": "alice", "Secret": "pw"}
    assert auth.lookup("reg:1") == auth.Credentials("alice", "pw")
    assert auth.erase("reg:1") and not kept.exists()

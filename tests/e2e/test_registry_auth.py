"""Auth with real clients: the docker CLI/engine and skopeo against dockyard-registry in token
mode (started as a user starts it, with users made by ``dockyard-registry user add``).

Docker treats 127.0.0.0/8 registries as insecure, so the token realm is plain HTTP on the same
port (the default realm: http://<Host>/token).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests import images
from tests.helpers import need_tool
from tests.servers import REGISTRY_BIN

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.timeout(400)]

CONFIG = """
auth:
  mode: token
  anonymous_pull: ["public/*"]
  rules:
    - {pattern: "team-a/*", groups: [team-a], actions: [pull, push, delete]}
    - {pattern: "team-a/*", users: [reader], actions: [pull]}
"""
USERS = {"root": ("rootpw-1", ["--admin"]), "alice": ("alicepw-1", ["--group", "team-a"]), "reader": ("readerpw-1", [])}


def cli(data_dir: Path, config: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run([str(REGISTRY_BIN), *args, "--config", str(config), "--data-dir", str(data_dir)],
                       input=input, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{args}: {r.stdout}\n{r.stderr}"
    return r


@pytest.fixture
def auth_registry(dockyard_registry, tmp_path):
    config = tmp_path / "registry.yml"
    config.write_text(CONFIG)
    data = tmp_path / "data"
    for name, (password, extra) in USERS.items():
        cli(data, config, "user", "add", name, "--password-stdin", *extra, input=password + "\n")
    secret = cli(data, config, "token", "create", "ci", "--scope", "team-a/ci*:pull,push").stdout.strip()
    reg = dockyard_registry(data_dir=data, args=("--config", str(config)))
    reg.robot_secret = secret  # type: ignore[attr-defined]
    reg.config_path = config  # type: ignore[attr-defined]
    return reg


def login(docker, host: str, user: str) -> subprocess.CompletedProcess:
    return docker.run("login", host, "-u", user, "--password-stdin", input=USERS[user][0] + "\n", check=False)


def test_docker_login_push_pull_and_denials(dockerd, auth_registry, tmp_path):
    docker, host = dockerd, auth_registry.host
    prefix = f"auth{uuid.uuid4().hex[:6]}"
    imgs = images.docker_build_busybox(docker, tmp_path / "build", prefix)
    private, public = f"{host}/team-a/{prefix}:v1", f"{host}/public/{prefix}:latest"
    docker.run("tag", imgs.one, private)
    docker.run("tag", imgs.two, public)
    docker.run("tag", imgs.two, f"{host}/team-a/{prefix}:v2")
    try:
        # no login: the push is refused
        r = docker.run("push", private, check=False)
        assert r.returncode != 0
        assert "denied" in r.stderr or "unauthorized" in r.stderr.lower() or "no basic auth" in r.stderr.lower(), r.stderr
        bad = docker.run("login", host, "-u", "alice", "--password-stdin", input="wrong\n", check=False)
        assert bad.returncode != 0 and "unauthorized" in bad.stderr.lower(), bad.stderr

        # alice (group team-a) pushes; root (admin) pushes the public repository
        r = login(docker, host, "alice")
        assert r.returncode == 0 and "Login Succeeded" in r.stdout, r.stderr
        cfg = json.loads((Path(docker.env["DOCKER_CONFIG"]) / "config.json").read_text())
        # docker kept our refresh token (its identity token): the pushes below use the OAuth2
        # refresh_token grant, not the password
        assert "identitytoken" in cfg["auths"][host]
        docker.run("push", private)
        r = docker.run("push", public, check=False)
        assert r.returncode != 0 and "denied: requested access to the resource is denied" in r.stderr, r.stderr
        assert login(docker, host, "root").returncode == 0
        docker.run("push", public)

        # reader may pull team-a but not push there
        assert login(docker, host, "reader").returncode == 0
        r = docker.run("push", f"{host}/team-a/{prefix}:v2", check=False)
        assert r.returncode != 0
        assert "denied: requested access to the resource is denied" in r.stderr, r.stderr
        docker.run("rmi", private)
        docker.run("pull", private)

        # signed out: the public repository pulls anonymously, the private one does not
        docker.run("logout", host)
        docker.run("rmi", private, public)
        docker.run("pull", public)
        r = docker.run("pull", private, check=False)
        assert r.returncode != 0, r.stdout
        assert "denied" in r.stderr or "unauthorized" in r.stderr.lower(), r.stderr
    finally:
        docker.run("logout", host, check=False)
        docker.run("rmi", "-f", private, public, f"{host}/team-a/{prefix}:v2", *imgs.tags, check=False)

    # nothing secret in the server's log
    log = auth_registry.log.read_text()
    for user, (password, _) in USERS.items():
        assert password not in log
    assert "Authorization" not in log and "eyJ" not in log


def test_skopeo_with_creds_and_robot_token(auth_registry, busybox_image_dir, tmp_path):
    need_tool("skopeo")
    host, secret = auth_registry.host, auth_registry.robot_secret
    base = ["skopeo", "--command-timeout", "120s"]

    def skopeo(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=180)

    img = busybox_image_dir
    r = skopeo("copy", "-q", "--dest-tls-verify=false", img.ref, f"docker://{host}/team-a/sk:v1")
    assert r.returncode != 0, "anonymous push must fail"
    r = skopeo("copy", "-q", "--dest-tls-verify=false", "--dest-creds", "alice:alicepw-1", img.ref,
               f"docker://{host}/team-a/sk:v1")
    assert r.returncode == 0, r.stderr
    r = skopeo("inspect", "--tls-verify=false", "--creds", "reader:readerpw-1", f"docker://{host}/team-a/sk:v1")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Digest"] == img.manifest.digest
    r = skopeo("inspect", "--tls-verify=false", f"docker://{host}/team-a/sk:v1")
    assert r.returncode != 0
    # the robot: push inside its scope, refused outside it
    r = skopeo("copy", "-q", "--dest-tls-verify=false", "--dest-creds", f"robot$ci:{secret}", img.ref,
               f"docker://{host}/team-a/ci-build:1")
    assert r.returncode == 0, r.stderr
    r = skopeo("copy", "-q", "--dest-tls-verify=false", "--dest-creds", f"robot$ci:{secret}", img.ref,
               f"docker://{host}/team-a/other:1")
    assert r.returncode != 0 and ("denied" in r.stderr.lower() or "403" in r.stderr), r.stderr
    # podman login talks to the same token endpoint
    if shutil.which("podman"):
        authfile = str(tmp_path / "auth.json")
        r = subprocess.run(["podman", "login", "--authfile", authfile, "--tls-verify=false", "-u", "alice",
                            "--password-stdin", host], input="wrong\n", capture_output=True, text=True, timeout=60)
        assert r.returncode != 0, r.stdout
        r = subprocess.run(["podman", "login", "--authfile", authfile, "--tls-verify=false", "-u", "alice",
                            "--password-stdin", host], input="alicepw-1\n", capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "Login Succeeded" in r.stdout, r.stderr
        r = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--authfile", authfile,
                            f"docker://{host}/team-a/sk:v1"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    # revoked: refused
    cli(auth_registry.data_dir, auth_registry.config_path, "token", "revoke", "ci")
    r = skopeo("inspect", "--tls-verify=false", "--creds", f"robot$ci:{secret}", f"docker://{host}/team-a/ci-build:1")
    assert r.returncode != 0


def test_basic_mode_with_docker_and_skopeo(dockerd, dockyard_registry, busybox_image_dir, tmp_path):
    need_tool("skopeo")
    config = tmp_path / "basic.yml"
    config.write_text(CONFIG.replace("mode: token", "mode: basic"))
    data = tmp_path / "data"
    for name in ("alice", "reader"):
        cli(data, config, "user", "add", name, "--password-stdin", *USERS[name][1], input=USERS[name][0] + "\n")
    reg = dockyard_registry(data_dir=data, args=("--config", str(config)))
    host, docker = reg.host, dockerd
    ref = f"{host}/team-a/basic:1"
    r = subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", "--dest-creds", "alice:alicepw-1",
                        busybox_image_dir.ref, f"docker://{ref}"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    try:
        r = docker.run("pull", ref, check=False)
        assert r.returncode != 0
        assert login(docker, host, "reader").returncode == 0
        docker.run("pull", ref)
        docker.run("tag", ref, f"{host}/team-a/basic:2")
        r = docker.run("push", f"{host}/team-a/basic:2", check=False)
        assert r.returncode != 0 and "denied: requested access to the resource is denied" in r.stderr, r.stderr
    finally:
        docker.run("logout", host, check=False)
        docker.run("rmi", "-f", ref, f"{host}/team-a/basic:2", check=False)

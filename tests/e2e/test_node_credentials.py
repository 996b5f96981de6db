"""Credentials as docker leaves them: `dockyard pull`/`push` read the config.json that the real
`docker login` wrote (token mode: an identity token, i.e. an OAuth2 refresh token; Basic mode:
`auth`), a credential helper named by `credsStore`, and wrong credentials cost one failed login.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.e2e.node_images_support import dockyard
from tests.helpers import need_tool
from tests.images import push_image
from tests.servers import REGISTRY_BIN

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.root, pytest.mark.timeout(300)]

PASSWORD = "alicepw-1"


def _registry(dockyard_registry, tmp_path: Path, mode: str):
    config = tmp_path / f"{mode}.yml"
    config.write_text(f"auth:\n  mode: {mode}\n  rules:\n"
                      "    - {pattern: \"team/*\", users: [alice], actions: [pull, push]}\n")
    data = tmp_path / f"{mode}-data"
    r = subprocess.run([str(REGISTRY_BIN), "user", "add", "alice", "--password-stdin", "--config", str(config),
                        "--data-dir", str(data)], input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return dockyard_registry(data_dir=data, args=("--config", str(config)))


def _failed_logins(reg) -> int:
    return reg.log.read_text().count("failed login")


def _seed(reg, busybox_image_dir, repo: str) -> str:
    need_tool("skopeo")
    argv = ["skopeo", "copy", "-q", "--dest-tls-verify=false", "--dest-creds", f"alice:{PASSWORD}",
            busybox_image_dir.ref, f"docker://{reg.host}/{repo}"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return f"{reg.host}/{repo}"


@pytest.mark.parametrize("mode", ["token", "basic"])
def test_docker_login_then_dockyard_pull_and_push(mode, dockerd, dockyard_registry, busybox_image_dir, tmp_path):
    reg = _registry(dockyard_registry, tmp_path, mode)
    ref = _seed(reg, busybox_image_dir, f"team/cred{uuid.uuid4().hex[:6]}:1")
    docker_cfg = Path(dockerd.env["DOCKER_CONFIG"])
    r = dockerd.run("login", reg.host, "-u", "alice", "--password-stdin", input=PASSWORD + "\n", check=False)
    assert r.returncode == 0, r.stderr
    try:
        entry = json.loads((docker_cfg / "config.json").read_text())["auths"][reg.host]
        if mode == "token":
            assert entry.get("identitytoken"), entry   # docker keeps the refresh token, not the password
        before = _failed_logins(reg)
        root = tmp_path / "root"
        out = dockyard(root, "pull", ref, config=docker_cfg)
        assert out.returncode == 0, out.stderr
        assert dockyard(root, "tag", ref, ref.rsplit(":", 1)[0] + ":2", config=docker_cfg).returncode == 0
        out = dockyard(root, "push", ref.rsplit(":", 1)[0] + ":2", config=docker_cfg)
        assert out.returncode == 0, out.stderr
        assert _failed_logins(reg) == before, reg.log.read_text()[-2000:]
    finally:
        dockerd.run("logout", reg.host, check=False)


def test_wrong_credentials_cost_one_failed_login(dockyard_registry, busybox_image_dir, tmp_path):
    reg = _registry(dockyard_registry, tmp_path, "token")
    ref = _seed(reg, busybox_image_dir, f"team/wrong{uuid.uuid4().hex[:6]}:1")
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    import base64
    (cfg / "config.json").write_text(json.dumps({"auths": {reg.host: {
        "auth": base64.b64encode(b"alice:not-the-password").decode()}}}))
    before = _failed_logins(reg)
    out = dockyard(tmp_path / "root", "pull", ref, config=cfg)
    assert out.returncode != 0
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and "refused" in err[0], out.stderr
    assert _failed_logins(reg) == before + 1
    # A stale identity token: refused once, a clear line, no password guesses.
    (cfg / "config.json").write_text(json.dumps({"auths": {reg.host: {
        "auth": base64.b64encode(b"alice:").decode(), "identitytoken": "not-a-token"}}}))
    out = dockyard(tmp_path / "root", "pull", ref, config=cfg)
    assert out.returncode != 0 and "identity token" in out.stderr, out.stderr
    assert _failed_logins(reg) == before + 1


def test_credential_helper_on_path(dockyard_registry, busybox_image_dir, tmp_path):
    reg = _registry(dockyard_registry, tmp_path, "token")
    ref = _seed(reg, busybox_image_dir, f"team/helper{uuid.uuid4().hex[:6]}:1")
    bindir, cfg = tmp_path / "bin", tmp_path / "cfg"
    bindir.mkdir()
    cfg.mkdir()
    asked = tmp_path / "asked"
    helper = bindir / "docker-credential-stub"
    helper.write_text("#!/bin/sh\n"
                      f"[ \"$1\" = get ] || exit 1\nread server\necho \"$server\" >> {asked}\n"
                      f"[ \"$server\" = \"{reg.host}\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\n"
                      f"echo '{{\"ServerURL\":\"{reg.host}\",\"Username\":\"alice\",\"Secret\":\"{PASSWORD}\"}}'\n")
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    (cfg / "config.json").write_text(json.dumps({"credsStore": "stub", "auths": {reg.host: {}}}))
    env = {"PATH": f"{bindir}:{os.environ['PATH']}"}
    out = dockyard(tmp_path / "root", "pull", ref, config=cfg, env=env)
    assert out.returncode == 0, out.stderr
    assert reg.host in asked.read_text().split()
    # Without the helper on PATH: one readable line naming it.
    (cfg / "config.json").write_text(json.dumps({"credHelpers": {reg.host: "absent"}}))
    out = dockyard(tmp_path / "root2", "pull", ref, config=cfg, env=env)
    assert out.returncode != 0 and "docker-credential-absent is not on PATH" in out.stderr, out.stderr

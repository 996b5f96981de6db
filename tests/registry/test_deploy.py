"""deploy/: the example config is valid, and the files that refer to settings use real ones."""
from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from registry.config import load_config
from tests.servers import REGISTRY_BIN

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_example_config_passes_check_config(tmp_path):
    r = subprocess.run([str(REGISTRY_BIN), "check-config", "--config", str(DEPLOY / "registry.example.yml"),
                        "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "config OK" in r.stderr


def test_compose_environment_is_a_valid_config():
    compose = yaml.safe_load((DEPLOY / "compose.yml").read_text())
    env = compose["services"]["registry"]["environment"]
    cfg = load_config(environ=env)
    assert cfg.database_url.startswith("postgresql+asyncpg://")


def test_systemd_unit_and_image_use_existing_commands():
    unit = (DEPLOY / "dockyard-registry.service").read_text()
    assert "dockyard-registry serve --config /etc/dockyard/registry.yml" in unit
    build = (DEPLOY / "Containerfile.registry").read_text()
    assert 'ENTRYPOINT ["dockyard-registry"]' in build and 'CMD ["serve"]' in build
    # The ENV block's DOCKYARD_REGISTRY_* settings load as a config.
    env = {}
    for line in build.replace("ENV ", "").splitlines():
        key, sep, value = line.strip().rstrip("\\").strip().partition("=")
        if sep and key.startswith("DOCKYARD_REGISTRY_"):
            env[key] = value
    assert set(env) == {"DOCKYARD_REGISTRY_LISTEN", "DOCKYARD_REGISTRY_DATA_DIR"}
    assert load_config(environ=env).listen == "0.0.0.0:5000"

"""Config layers: defaults <- YAML file <- DOCKYARD_REGISTRY_* env <- command-line flags."""
from __future__ import annotations

import pytest

from registry.config import ConfigError, RegistryConfig, load_config


def test_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(environ={})
    assert cfg.listen == "127.0.0.1:5000" and cfg.port == 5000 and cfg.host == "127.0.0.1"
    assert cfg.data_dir == "./data"
    assert cfg.database_url == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'index.db'}"
    assert cfg.delete_enabled is True
    assert cfg.max_manifest_size == 4 * 1024 * 1024


def test_layers_override_in_order(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text(
        "listen: 0.0.0.0:6000\ndata_dir: /srv/a\ndelete_enabled: false\nupload_expiry: 2h\n"
        "max_manifest_size: 1MiB\nauth:\n  realm: file\n  issuer: me\ncatalog:\n  title: Hi\n"
    )
    env = {
        "DOCKYARD_REGISTRY_DATA_DIR": "/srv/b",
        "DOCKYARD_REGISTRY_DELETE_ENABLED": "yes",
        "DOCKYARD_REGISTRY_AUTH__REALM": "env",
        "OTHER": "ignored",
    }
    cfg = load_config(str(f), environ=env, overrides={"data_dir": "/srv/c", "listen": None})
    assert cfg.listen == "0.0.0.0:6000"
    assert cfg.data_dir == "/srv/c"
    assert cfg.database_url == "sqlite+aiosqlite:////srv/c/index.db"
    assert cfg.delete_enabled is True
    assert cfg.upload_expiry == 7200
    assert cfg.max_manifest_size == 1 << 20
    assert cfg.auth == {"realm": "env", "issuer": "me"}
    assert cfg.catalog == {"title": "Hi"}


@pytest.mark.parametrize(
    "text,needle",
    [
        ("listen: nowhere\n", "listen"),
        ("delete_enabled: maybe\n", "delete_enabled"),
        ("colour: blue\n", "unknown setting 'colour'"),
        ("database_url: mysql://x\n", "database_url"),
        ("upload_expiry: soon\n", "upload_expiry"),
        ("log_level: LOUD\n", "log_level"),
        ("- a list\n", "mapping"),
        ("listen: [unclosed\n", "not valid YAML"),
        ("auth: 3\n", "auth"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path, text, needle):
    f = tmp_path / "c.yml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=None) as e:
        load_config(str(f), environ={})
    assert needle in str(e.value)


def test_missing_file_and_bad_env():
    with pytest.raises(ConfigError, match="cannot read"):
        load_config("/nonexistent/dockyard.yml", environ={})
    with pytest.raises(ConfigError, match="max_manifest_size"):
        load_config(environ={"DOCKYARD_REGISTRY_MAX_MANIFEST_SIZE": "lots"})


def test_describe_hides_passwords():
    cfg = RegistryConfig(database_url="postgresql+asyncpg://u:secret@h/db").finish()
    assert "secret" not in str(cfg.describe())


import pytest  # noqa: E402


@pytest.mark.parametrize("section,text,needle", [
    ("catalog", "catalog:\n  ranking_max_age: -5\n", "catalog.ranking_max_age"),
    ("catalog", "catalog:\n  enabled: maybe\n", "catalog.enabled"),
    ("auth", "auth:\n  mode: sometimes\n", "auth"),
    ("storage", "storage:\n  driver: tape\n", "storage"),
    ("proxy", "proxy: [1, 2]\n", "proxy"),
    ("top level", "max_open_uploads_per_client: -1\n", "max_open_uploads_per_"),
])
def test_check_config_validates_every_section(tmp_path, capsys, section, text, needle):
    """#12: check-config validates every section (the catalog's was never looked at)."""
    from registry.__main__ import main

    path = tmp_path / "c.yml"
    path.write_text(text)
    assert main(["check-config", "--config", str(path), "--data-dir", str(tmp_path)]) == 2, section
    assert needle in capsys.readouterr().err

"""The s3 storage section: one-line errors, environment overrides, the secret never printed."""
from __future__ import annotations

import json

import pytest

from registry.__main__ import main
from registry.config import ConfigError, load_config
from registry.storage.s3_settings import parse_s3_settings

SECRET = "very-secret-key-123"
BASE = {"driver": "s3", "bucket": "dockyard", "endpoint": "http://127.0.0.1:8333",
        "access_key": "AKID", "secret_key": SECRET}


def test_settings_and_defaults():
    s = parse_s3_settings(BASE)
    assert (s.bucket, s.region, s.prefix, s.redirect) == ("dockyard", "us-east-1", "", False)
    assert s.sign_payload is False and parse_s3_settings({**BASE, "sign_payload": "true"}).sign_payload is True
    assert SECRET not in repr(s)


@pytest.mark.parametrize("change, words", [
    ({"bucket": ""}, "storage.bucket: required"),
    ({"bucket": "Bad_Bucket"}, "not a valid bucket name"),
    ({"endpoint": "127.0.0.1:8333"}, "storage.endpoint: expected http(s)://HOST[:PORT]"),
    ({"endpoint": "http://h:99999"}, "storage.endpoint: bad port"),
    ({"secret_key": ""}, "give both or neither"),
    ({"redirect": "maybe"}, "storage.redirect: expected true or false"),
    ({"sign_payload": "sometimes"}, "storage.sign_payload: expected true or false"),
    ({"prefix": "/abs"}, "storage.prefix"),
    ({"region": "US East"}, "storage.region"),
    ({"retries": "lots"}, "storage.retries"),
    ({"buckt": "x"}, "unknown setting 'buckt'"),
])
def test_mistakes_are_one_line_without_the_secret(change, words):
    with pytest.raises(ConfigError) as e:
        parse_s3_settings({**BASE, **change})
    message = str(e.value)
    assert words in message and "\n" not in message and SECRET not in message


def test_environment_overrides_the_file_and_booleans_are_booleans(tmp_path):
    f = tmp_path / "registry.yml"
    f.write_text(json.dumps({"storage": {**BASE, "redirect": False, "prefix": "file/"}}))
    cfg = load_config(str(f), environ={"DOCKYARD_REGISTRY_STORAGE__REDIRECT": "true",
                                       "DOCKYARD_REGISTRY_STORAGE__PREFIX": "scale/"})
    s = parse_s3_settings(cfg.storage)
    assert s.redirect is True and s.prefix == "scale/"
    cfg = load_config(str(f), environ={"DOCKYARD_REGISTRY_STORAGE__REDIRECT": "off"})
    assert parse_s3_settings(cfg.storage).redirect is False


def test_check_config_validates_and_never_prints_the_secret(tmp_path, capsys, monkeypatch):
    for k in [k for k in __import__("os").environ if k.startswith("DOCKYARD_REGISTRY_")]:
        monkeypatch.delenv(k)
    f = tmp_path / "registry.yml"
    f.write_text(json.dumps({"data_dir": str(tmp_path / "d"), "storage": BASE}))
    assert main(["check-config", "--config", str(f)]) == 0
    out, err = capsys.readouterr()
    assert SECRET not in out + err and json.loads(out)["storage"]["secret_key"] == "***"
    f.write_text(json.dumps({"data_dir": str(tmp_path / "d"), "storage": {**BASE, "endpoint": "ftp://x"}}))
    assert main(["check-config", "--config", str(f)]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "storage.endpoint" in err and SECRET not in out + err

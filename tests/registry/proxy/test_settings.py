"""The ``proxy:`` section: parsed as the issue's YAML shows it, mistakes named in one line."""
from __future__ import annotations

import pytest

from registry.config import ConfigError, RegistryConfig, load_config
from registry.proxy.settings import parse_proxy


def cfg(section) -> RegistryConfig:
    return RegistryConfig(data_dir="/tmp/x", proxy=section).finish()


def test_the_documented_section(tmp_path):
    path = tmp_path / "r.yml"
    path.write_text("""
proxy:
  upstreams:
    - name: hub
      url: https://registry-1.docker.io
      username: ""
      password: ""
      tag_ttl: 10m
      timeout: 30s
  mirror: hub
""")
    s = parse_proxy(load_config(str(path), environ={}))
    assert s.mirror == "hub" and s.enabled
    up = s.upstream("hub")
    assert up is not None and (up.url, up.tag_ttl, up.timeout, up.username) == ("https://registry-1.docker.io", 600, 30, "")
    assert not parse_proxy(cfg({})).enabled
    assert parse_proxy(cfg({"max_size": "2GiB"})).max_size == 2 << 30
    assert parse_proxy(cfg({})).on_quota == "evict" and parse_proxy(cfg({"on_quota": "refuse"})).on_quota == "refuse"


def test_env_override_and_redacted_describe():
    c = load_config(None, environ={"DOCKYARD_REGISTRY_PROXY__MIRROR": ""})
    assert parse_proxy(c).mirror == ""
    c = cfg({"upstreams": [{"name": "q", "url": "http://127.0.0.1:1", "username": "u", "password": "secret"}]})
    assert c.describe()["proxy"]["upstreams"][0]["password"] == "***"
    assert c.proxy["upstreams"][0]["password"] == "secret"


@pytest.mark.parametrize("section, message", [
    ({"upstreams": [{"name": "Hub", "url": "https://x"}]}, "proxy.upstreams[0].name"),
    ({"upstreams": [{"name": "hub", "url": "ftp://x"}]}, "proxy.upstreams[0].url"),
    ({"upstreams": [{"name": "hub", "url": "https://x/v2"}]}, "proxy.upstreams[0].url"),
    ({"upstreams": [{"name": "hub", "url": "https://x", "username": "u"}]}, "username and password go together"),
    ({"upstreams": [{"name": "hub", "url": "https://x", "tag_ttl": "soon"}]}, "proxy.upstreams[0].tag_ttl"),
    ({"upstreams": [{"name": "hub", "url": "https://x", "colour": 1}]}, "unknown key(s) colour"),
    ({"upstreams": [{"name": "a", "url": "https://x"}, {"name": "a", "url": "https://y"}]}, "'a' is used twice"),
    ({"upstreams": [{"name": "a", "url": "https://x"}], "mirror": "b"}, "proxy.mirror: 'b' is not one of"),
    ({"upstreams": {"name": "a"}}, "proxy.upstreams: expected a list"),
    ({"mirrors": "a"}, "unknown key(s) mirrors"),
    ({"max_size": "lots"}, "proxy.max_size"),
    ({"on_quota": "panic"}, "proxy.on_quota: expected one of evict, refuse"),
])
def test_mistakes_are_named(section, message):
    with pytest.raises(ConfigError) as e:
        parse_proxy(cfg(section))
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_check_config_validates_the_section(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "bad.yml"
    path.write_text("proxy:\n  upstreams:\n    - {name: hub, url: 'ftp://nowhere'}\n")
    r = subprocess.run([sys.executable, "-m", "registry", "check-config", "--config", str(path), "--data-dir",
                        str(tmp_path / "d")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "proxy.upstreams[0].url" in r.stderr, r.stderr

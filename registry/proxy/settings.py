"""The ``proxy`` section of the config: upstream registries served under a prefix, and a mirror.

```yaml
proxy:
  upstreams:
    - name: hub                       # served under /v2/hub/<repository>/...
      url: https://registry-1.docker.io
      username: ""                    # optional, with password
      password: ""
      tag_ttl: 10m                    # re-check a cached tag after this long
      timeout: 30s                    # an upstream slower than this counts as down
  mirror: hub                         # optional: un-prefixed names that no local repository
                                      # holds are fetched from this upstream
  max_size: 50GiB                     # optional (an addition to the issue's keys): evict the
                                      # least recently pulled cached repositories beyond this
                                      # (each blob counted once, however many share it)
  on_quota: evict                     # a fill over the namespace's quota: evict the least
                                      # recently pulled cached repositories there, or refuse
```
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..config import ConfigError, RegistryConfig, parse_duration, parse_size

UPSTREAM_KEYS = {"name", "url", "username", "password", "tag_ttl", "timeout"}
SECTION_KEYS = {"upstreams", "mirror", "max_size", "on_quota"}
ON_QUOTA = ("evict", "refuse")
# One path component of a repository name (the OCI grammar), so /v2/<name>/... stays valid.
_NAME_RE = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$")


@dataclass(frozen=True)
class Upstream:
    name: str
    url: str  # scheme://host[:port], no trailing slash
    username: str = ""
    password: str = ""
    tag_ttl: float = 600.0
    timeout: float = 30.0

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "username": self.username,
                "password": "***" if self.password else "", "tag_ttl": self.tag_ttl, "timeout": self.timeout}


@dataclass(frozen=True)
class ProxySettings:
    upstreams: tuple[Upstream, ...] = ()
    mirror: str = ""
    max_size: int = 0  # bytes; 0 = no cap
    on_quota: str = "evict"  # see registry/proxy/quota.py

    @property
    def enabled(self) -> bool:
        return bool(self.upstreams)

    def upstream(self, name: str) -> Upstream | None:
        for up in self.upstreams:
            if up.name == name:
                return up
        return None


def _upstream(entry: Any, i: int) -> Upstream:
    where = f"proxy.upstreams[{i}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping with name and url, got {entry!r}")
    unknown = set(entry) - UPSTREAM_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(UPSTREAM_KEYS))})")
    name = str(entry.get("name") or "")
    if not _NAME_RE.match(name):
        raise ConfigError(f"{where}.name: expected one lower-case repository path component like 'hub', got {name!r}")
    url = str(entry.get("url") or "").rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
        raise ConfigError(f"{where}.url: expected http(s)://HOST[:PORT], got {url!r}")
    username, password = str(entry.get("username") or ""), str(entry.get("password") or "")
    if bool(username) != bool(password):
        raise ConfigError(f"{where}: username and password go together")
    tag_ttl = parse_duration(entry.get("tag_ttl", "10m"), f"{where}.tag_ttl")
    timeout = parse_duration(entry.get("timeout", "30s"), f"{where}.timeout")
    if tag_ttl < 0 or timeout <= 0:
        raise ConfigError(f"{where}: tag_ttl must not be negative and timeout must be positive")
    return Upstream(name, url, username, password, tag_ttl, timeout)


def parse_proxy(config: RegistryConfig) -> ProxySettings:
    raw = getattr(config, "proxy", None) or {}
    if not isinstance(raw, dict):
        raise ConfigError("proxy: must be a mapping")
    unknown = set(raw) - SECTION_KEYS
    if unknown:
        raise ConfigError(f"proxy: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(SECTION_KEYS))})")
    entries = raw.get("upstreams") or []
    if not isinstance(entries, list):
        raise ConfigError("proxy.upstreams: expected a list of upstream entries")
    upstreams = tuple(_upstream(e, i) for i, e in enumerate(entries))
    names = [u.name for u in upstreams]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"proxy.upstreams: the name {sorted(dup)[0]!r} is used twice")
    mirror = str(raw.get("mirror") or "")
    if mirror and mirror not in names:
        raise ConfigError(f"proxy.mirror: {mirror!r} is not one of the upstreams ({', '.join(names) or 'none'})")
    max_size = parse_size(raw.get("max_size") or 0, "proxy.max_size")
    if max_size < 0:
        raise ConfigError("proxy.max_size: must not be negative")
    on_quota = str(raw.get("on_quota") or "evict")
    if on_quota not in ON_QUOTA:
        raise ConfigError(f"proxy.on_quota: expected one of {', '.join(ON_QUOTA)}, got {on_quota!r}")
    return ProxySettings(upstreams, mirror, max_size, on_quota)

"""The ``auth`` section of the config, parsed and validated once into ``AuthSettings``.

```yaml
auth:
  mode: token            # none (default) | basic | token
  service: dockyard      # the JWT audience and the service= of the challenge
  issuer: dockyard-token-issuer
  realm: ""              # token endpoint URL; empty: http(s)://<Host of the request>/token
  token_key: ""          # PEM private key (RSA or EC P-256); empty: <data_dir>/auth/token-key.pem,
  token_key_type: ec     #   generated (ec -> ES256, rsa -> RS256) when the file is absent
  previous_token_keys: []  # earlier signing keys whose tokens are still accepted (rotation)
  token_ttl: 5m          # access tokens
  refresh_ttl: 7d        # refresh tokens (docker login's identity token)
  session_ttl: 12h       # the catalog's sign-in cookie
  htpasswd: ""           # bcrypt htpasswd file used as is (beside the users in the index)
  admins: [alice]        # user names (e.g. from htpasswd) with every right
  anonymous_pull: ["public/*"]
  rules:
    - {pattern: "team-a/*", groups: [team-a], actions: [pull, push, delete]}
    - {pattern: "{user}/*", users: ["*"], actions: [pull, push]}   # "*" = any signed-in user
  failed_login_limit: 10 # failed logins per client IP (per user name: 5x) ...
  failed_login_window: 1m  # ... per this window, then 429 TOOMANYREQUESTS
  trusted_proxies: []    # networks of reverse proxies whose X-Forwarded-For names the client
  tls_cert: ""           # serve HTTPS with this certificate chain and key
  tls_key: ""
```
"""
from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any

from ..config import ConfigError, RegistryConfig, parse_duration
from .rules import ACTIONS, Rule, check_pattern

MODES = ("none", "basic", "token")
KNOWN = {"mode", "service", "issuer", "realm", "token_key", "token_key_type", "token_ttl", "refresh_ttl",
         "htpasswd", "admins", "anonymous_pull", "rules", "failed_login_limit", "failed_login_window",
         "tls_cert", "tls_key", "session_ttl", "trusted_proxies", "previous_token_keys"}


@dataclass(frozen=True)
class AuthSettings:
    mode: str = "none"
    service: str = "dockyard"
    issuer: str = "dockyard-token-issuer"
    realm: str = ""
    token_key: str = ""
    token_key_type: str = "ec"
    previous_token_keys: tuple[str, ...] = ()
    token_ttl: float = 300.0
    refresh_ttl: float = 7 * 86400.0
    session_ttl: float = 12 * 3600.0
    htpasswd: str = ""
    admins: tuple[str, ...] = ()
    anonymous_pull: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    failed_login_limit: int = 10
    failed_login_window: float = 60.0
    tls_cert: str = ""
    tls_key: str = ""
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.mode != "none"


def _str_list(value: Any, name: str) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):  # env overrides arrive as "a,b"
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"auth.{name}: expected a list of strings, got {value!r}")
    return tuple(value)


def _rule(i: int, raw: Any) -> Rule:
    where = f"auth.rules[{i}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with pattern, users/groups and actions")
    unknown = set(raw) - {"pattern", "users", "groups", "actions"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    pattern = raw.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise ConfigError(f"{where}.pattern: expected a glob such as team-a/*")
    check_pattern(pattern, f"{where}.pattern")
    users, groups = _str_list(raw.get("users"), f"rules[{i}].users"), _str_list(raw.get("groups"), f"rules[{i}].groups")
    if not users and not groups:
        raise ConfigError(f"{where}: name some users or groups (users: ['*'] means any signed-in user)")
    actions = _str_list(raw.get("actions", ["pull"]), f"rules[{i}].actions")
    bad = [a for a in actions if a not in ACTIONS]
    if bad or not actions:
        raise ConfigError(f"{where}.actions: expected some of {', '.join(ACTIONS)}, got {list(actions)!r}")
    return Rule(pattern, frozenset(users), frozenset(groups), frozenset(actions))


def parse_auth(config: RegistryConfig) -> AuthSettings:
    raw = dict(config.auth)
    unknown = set(raw) - KNOWN
    if unknown:
        raise ConfigError(f"auth: unknown setting(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(KNOWN))})")
    mode = str(raw.get("mode", "none") or "none").lower()
    if mode not in MODES:
        raise ConfigError(f"auth.mode: expected one of {', '.join(MODES)}, got {mode!r}")
    key_type = str(raw.get("token_key_type", "ec")).lower()
    if key_type not in ("ec", "rsa"):
        raise ConfigError(f"auth.token_key_type: expected ec or rsa, got {key_type!r}")
    token_key = str(raw.get("token_key") or "") or str(Path(config.data_dir) / "auth" / "token-key.pem")
    rules_raw = raw.get("rules") or []
    if not isinstance(rules_raw, list):
        raise ConfigError("auth.rules: expected a list of rules")
    anonymous = _str_list(raw.get("anonymous_pull"), "anonymous_pull")
    for p in anonymous:
        check_pattern(p, "auth.anonymous_pull")
    try:
        limit = int(raw.get("failed_login_limit", 10))
    except (TypeError, ValueError):
        raise ConfigError("auth.failed_login_limit: expected a whole number") from None
    proxies = []
    for net in _str_list(raw.get("trusted_proxies"), "trusted_proxies"):
        try:
            proxies.append(ip_network(net, strict=False))
        except ValueError:
            raise ConfigError(f"auth.trusted_proxies: {net!r} is not an address or network") from None
    settings = AuthSettings(
        mode=mode,
        service=str(raw.get("service") or "dockyard"),
        issuer=str(raw.get("issuer") or "dockyard-token-issuer"),
        realm=str(raw.get("realm") or ""),
        token_key=token_key,
        token_key_type=key_type,
        previous_token_keys=_str_list(raw.get("previous_token_keys"), "previous_token_keys"),
        token_ttl=parse_duration(raw.get("token_ttl", 300), "auth.token_ttl"),
        refresh_ttl=parse_duration(raw.get("refresh_ttl", 7 * 86400), "auth.refresh_ttl"),
        session_ttl=parse_duration(raw.get("session_ttl", 12 * 3600), "auth.session_ttl"),
        htpasswd=str(raw.get("htpasswd") or ""),
        admins=_str_list(raw.get("admins"), "admins"),
        anonymous_pull=anonymous,
        rules=tuple(_rule(i, r) for i, r in enumerate(rules_raw)),
        failed_login_limit=limit,
        failed_login_window=parse_duration(raw.get("failed_login_window", 60), "auth.failed_login_window"),
        tls_cert=str(raw.get("tls_cert") or ""),
        tls_key=str(raw.get("tls_key") or ""),
        trusted_proxies=tuple(proxies),
    )
    if settings.token_ttl <= 0 or settings.refresh_ttl <= 0 or settings.session_ttl <= 0:
        raise ConfigError("auth: token_ttl, refresh_ttl and session_ttl must be positive")
    if settings.failed_login_limit < 1 or settings.failed_login_window <= 0:
        raise ConfigError("auth: failed_login_limit must be >= 1 and failed_login_window positive")
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ConfigError("auth: tls_cert and tls_key go together")
    if settings.realm and not settings.realm.startswith(("http://", "https://")):
        raise ConfigError(f"auth.realm: expected an http(s):// URL, got {settings.realm!r}")
    return settings

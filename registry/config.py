"""One typed settings object for the registry.

Layers, each overriding the one before:

1. defaults (below),
2. a YAML file (``--config FILE``), keys as the field names (``data_dir``, ``delete_enabled``...),
3. ``DOCKYARD_REGISTRY_<FIELD>`` environment variables (``DOCKYARD_REGISTRY_LISTEN=0.0.0.0:5000``),
   and ``DOCKYARD_REGISTRY_<SECTION>__<KEY>`` for the raw sections
   (``DOCKYARD_REGISTRY_AUTH__REALM=...`` sets ``auth["realm"]``),
4. command-line flags.

The raw sections ``auth``, ``catalog``, ``proxy`` and ``storage`` are plain dicts: the code that owns
them (registry.auth, registry.web, registry.proxy, registry.storage) parses and validates them itself.
Any mistake raises ``ConfigError`` with a message naming the setting.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

ENV_PREFIX = "DOCKYARD_REGISTRY_"
SECTIONS = ("auth", "catalog", "proxy", "storage", "gc", "retention", "notifications")  # lifecycle: registry/lifecycle/settings.py
LOG_FORMATS = ("text", "json")
# Old keys still read for one release, with a warning naming their replacement.
DEPRECATED = {"gc_grace": "gc.review_delay", "gc_interval": "gc.enabled (the online review worker)"}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_SIZE_RE = re.compile(r"^\s*(\d+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$", re.I)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1 << 20, "mb": 1 << 20,
               "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


class ConfigError(ValueError):
    """The configuration is wrong; the message says which setting and why."""


@dataclass
class RegistryConfig:
    listen: str = "127.0.0.1:5000"
    data_dir: str = "./data"
    # Empty means: SQLite in <data_dir>/index.db (resolved by ``finish``).
    database_url: str = ""
    delete_enabled: bool = True
    max_manifest_size: int = 4 * 1024 * 1024
    # Seconds an upload session may stay idle before it is cancelled and its bytes removed.
    upload_expiry: float = 7 * 86400
    # Open (unfinished) upload sessions allowed per repository and per client (a signed-in user,
    # else an address); 0 = no cap. Abandoned sessions otherwise pile up until upload_expiry.
    max_open_uploads_per_repository: int = 1000
    max_open_uploads_per_client: int = 500
    # GC never removes a blob younger than this: it may belong to a push in flight.
    gc_grace: float = 3600
    # Seconds between online garbage collections inside `serve`; 0 (default) = only `gc` runs it.
    gc_interval: float = 0
    log_level: str = "INFO"
    # The access log on stderr, one line per request: "text" or "json" (registry/ops/access_log.py).
    log_format: str = "text"
    # `serve` brings the database schema up to date on start.
    auto_migrate: bool = True
    # Raw sections parsed by their owners.
    auth: dict[str, Any] = field(default_factory=dict)
    catalog: dict[str, Any] = field(default_factory=dict)
    proxy: dict[str, Any] = field(default_factory=dict)
    storage: dict[str, Any] = field(default_factory=dict)
    gc: dict[str, Any] = field(default_factory=dict)
    retention: dict[str, Any] = field(default_factory=dict)
    notifications: dict[str, Any] = field(default_factory=dict)
    # True when the deprecated gc_grace was given (it then feeds gc.review_delay).
    gc_grace_set: bool = False

    # -- derived values -----------------------------------------------------------------------
    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]

    def finish(self) -> "RegistryConfig":
        """Validate every field and fill in derived defaults. Returns self."""
        split_listen(self.listen)
        if not self.data_dir:
            raise ConfigError("data_dir: must not be empty")
        if not self.database_url:
            path = Path(self.data_dir).absolute() / "index.db"
            self.database_url = f"sqlite+aiosqlite:///{path}"
        if not re.match(r"^(sqlite\+aiosqlite|postgresql\+asyncpg)://", self.database_url):
            raise ConfigError(
                "database_url: expected sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB, "
                f"got {redact_url(self.database_url)!r}"
            )
        if self.max_manifest_size <= 0:
            raise ConfigError("max_manifest_size: must be positive")
        if self.max_open_uploads_per_repository < 0 or self.max_open_uploads_per_client < 0:
            raise ConfigError("max_open_uploads_per_repository/_per_client: must not be negative (0 = no cap)")
        if self.upload_expiry <= 0 or self.gc_grace < 0 or self.gc_interval < 0:
            raise ConfigError("upload_expiry must be positive; gc_grace and gc_interval not negative")
        self.log_level = str(self.log_level).upper()
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log_level: expected one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
        for name in SECTIONS:
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{name}: must be a mapping")
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"log_format: expected text or json, got {self.log_format!r}")
        from .lifecycle.settings import parse_lifecycle

        parse_lifecycle(self)  # validates the gc, retention and notifications sections
        return self

    def describe(self) -> dict[str, Any]:
        """The settings as plain data, with passwords in URLs hidden (for check-config)."""
        d = dataclasses.asdict(self)
        d["database_url"] = redact_url(self.database_url)
        for key in ("secret_key", "password"):
            if d["storage"].get(key):
                d["storage"][key] = "***"
        for up in d["proxy"].get("upstreams") or []:  # upstream credentials (registry.proxy)
            if isinstance(up, dict) and up.get("password"):
                up["password"] = "***"
        return d


def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = str(listen).rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"listen: expected HOST:PORT, got {listen!r}")
    return (host.strip("[]") or "0.0.0.0"), int(port)


def redact_url(url: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def parse_duration(value: Any, name: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = _DURATION_RE.match(str(value))
    if not m:
        raise ConfigError(f"{name}: expected a duration like 90, 30s, 10m, 24h or 7d, got {value!r}")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def parse_size(value: Any, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = _SIZE_RE.match(str(value))
    if not m:
        raise ConfigError(f"{name}: expected a size like 4194304 or 4MiB, got {value!r}")
    return int(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()]


def parse_count(value: Any, name: str) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {value!r}") from None


def parse_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true or false, got {value!r}")


_CONVERTERS = {
    "listen": lambda v, n: str(v),
    "data_dir": lambda v, n: str(v),
    "database_url": lambda v, n: str(v),
    "delete_enabled": parse_bool,
    "max_manifest_size": parse_size,
    "upload_expiry": parse_duration,
    "max_open_uploads_per_repository": lambda v, n: parse_count(v, n),
    "max_open_uploads_per_client": lambda v, n: parse_count(v, n),
    "gc_grace": parse_duration,
    "gc_interval": parse_duration,
    "log_level": lambda v, n: str(v),
    "log_format": lambda v, n: str(v).lower(),
    "auto_migrate": parse_bool,
}


def _apply(cfg: RegistryConfig, values: Mapping[str, Any], origin: str) -> None:
    for key, value in values.items():
        if key in SECTIONS:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: {key} must be a mapping")
            getattr(cfg, key).update(value)
        elif key in _CONVERTERS:
            if value is None:
                continue
            if key in DEPRECATED:
                logging.getLogger("registry.config").warning(
                    "%s: %s is deprecated and will be removed in the next release; use %s", origin, key, DEPRECATED[key])
                cfg.gc_grace_set = cfg.gc_grace_set or key == "gc_grace"
            setattr(cfg, key, _CONVERTERS[key](value, f"{origin}: {key}"))
        else:
            known = ", ".join([*_CONVERTERS, *SECTIONS])
            raise ConfigError(f"{origin}: unknown setting {key!r} (known: {known})")


def load_file(path: str) -> dict[str, Any]:
    import yaml  # only with a config file (~1 MiB resident otherwise held for nothing)

    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping")
    return doc


def from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        rest = key[len(ENV_PREFIX):].lower()
        section, sep, sub = rest.partition("__")
        if sep and section in SECTIONS and sub:
            out.setdefault(section, {})[sub] = value
        else:
            out[rest] = value
    return out


def load_config(
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RegistryConfig:
    """Defaults <- YAML file <- environment <- overrides (CLI flags; None values ignored)."""
    cfg = RegistryConfig()
    if path:
        _apply(cfg, load_file(path), f"config file {path}")
    _apply(cfg, from_env(os.environ if environ is None else environ), "environment")
    if overrides:
        _apply(cfg, {k: v for k, v in overrides.items() if v is not None}, "command line")
    return cfg.finish()

"""The ``catalog`` section of the registry config, parsed and validated once.

```yaml
catalog:
  enabled: true              # serve the HTML catalog, its JSON API and /v1/search
  ranking_max_age: 30        # seconds a sort/stats snapshot may miss other replicas' writes
  actions: true              # delete / copy buttons for users with the rights (false: read-only UI)
  record_pulls: true         # remember each tag's last pull (a batched write, off the pull path)
  pull_flush_interval: 5s    # how often noted pulls are written
```
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import ConfigError, RegistryConfig, parse_bool, parse_duration

KNOWN = {"enabled", "ranking_max_age", "actions", "record_pulls", "pull_flush_interval"}


@dataclass(frozen=True)
class CatalogSettings:
    enabled: bool = True
    ranking_max_age: float = 30.0
    actions: bool = True
    record_pulls: bool = True
    pull_flush_interval: float = 5.0


def parse_catalog(config: RegistryConfig) -> CatalogSettings:
    raw = config.catalog or {}
    if not isinstance(raw, dict):
        raise ConfigError("catalog: expected a mapping of settings")
    unknown = sorted(set(raw) - KNOWN)
    if unknown:
        raise ConfigError(f"catalog: unknown setting {unknown[0]!r} (known: {', '.join(sorted(KNOWN))})")
    age = parse_duration(raw.get("ranking_max_age", 30), "catalog.ranking_max_age")
    if age < 0:
        raise ConfigError("catalog.ranking_max_age: must not be negative")
    interval = parse_duration(raw.get("pull_flush_interval", 5), "catalog.pull_flush_interval")
    if not 0.1 <= interval <= 3600:
        raise ConfigError("catalog.pull_flush_interval: between 0.1s and 1h")
    return CatalogSettings(
        enabled=parse_bool(raw.get("enabled", True), "catalog.enabled"),
        ranking_max_age=age,
        actions=parse_bool(raw.get("actions", True), "catalog.actions"),
        record_pulls=parse_bool(raw.get("record_pulls", True), "catalog.record_pulls"),
        pull_flush_interval=interval,
    )

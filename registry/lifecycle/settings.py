"""The ``gc:``, ``retention:`` and ``notifications:`` sections, parsed and validated.

``parse_lifecycle(config)`` turns the raw dicts of RegistryConfig into typed settings; every
mistake is a one-line ConfigError naming the key. The old top-level ``gc_grace`` and
``gc_interval`` still work for one release (registry/config.py warns and names the new keys):
``gc_grace`` becomes ``gc.review_delay`` when that is not set.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..config import ConfigError, RegistryConfig, parse_bool, parse_duration

ACTIONS = ("push", "pull", "delete")


@lru_cache(maxsize=512)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """A repository glob: ``*`` and ``?`` stay inside one path segment, ``**`` crosses ``/``."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("^" + "".join(out) + "$")


def glob_match(pattern: str, name: str) -> bool:
    return bool(glob_regex(pattern).match(name))


@dataclass(frozen=True)
class GcSettings:
    enabled: bool = True
    review_delay: float = 86400.0
    untagged_after: float = 0.0  # 0 keeps untagged manifests


@dataclass(frozen=True)
class RetentionRule:
    repositories: str
    keep_last: int | None = None
    keep_tags: tuple[str, ...] = ()
    older_than: float | None = None
    protected: tuple[str, ...] = ()

    def matches(self, repository: str) -> bool:
        return glob_match(self.repositories, repository)


@dataclass(frozen=True)
class RetentionSettings:
    interval: float = 3600.0
    rules: tuple[RetentionRule, ...] = ()


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    headers: dict[str, list[str]] = field(default_factory=dict)
    actions: frozenset[str] = frozenset(ACTIONS)
    repositories: str | None = None
    timeout: float = 5.0

    def wants(self, action: str, repository: str) -> bool:
        return action in self.actions and (self.repositories is None or glob_match(self.repositories, repository))


@dataclass(frozen=True)
class NotificationSettings:
    endpoints: tuple[Endpoint, ...] = ()


@dataclass(frozen=True)
class LifecycleSettings:
    gc: GcSettings
    retention: RetentionSettings
    notifications: NotificationSettings


def _mapping(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: must be a mapping")
    return value


def _unknown(section: dict[str, Any], known: tuple[str, ...], name: str) -> None:
    for key in section:
        if key not in known:
            raise ConfigError(f"{name}: unknown key {key!r} (known: {', '.join(known)})")


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{name}: expected a list of patterns")
    return tuple(value)


def parse_gc(config: RegistryConfig) -> GcSettings:
    raw = _mapping(config.gc, "gc")
    _unknown(raw, ("enabled", "review_delay", "untagged_after"), "gc")
    delay = raw.get("review_delay", config.gc_grace if config.gc_grace_set else 86400.0)
    gc = GcSettings(
        enabled=parse_bool(raw.get("enabled", True), "gc.enabled"),
        review_delay=parse_duration(delay, "gc.review_delay"),
        untagged_after=parse_duration(raw.get("untagged_after", 0), "gc.untagged_after"),
    )
    if gc.review_delay < 0 or gc.untagged_after < 0:
        raise ConfigError("gc.review_delay and gc.untagged_after must not be negative")
    return gc


def _rule(raw: Any, i: int) -> RetentionRule:
    name = f"retention.rules[{i}]"
    raw = _mapping(raw, name)
    _unknown(raw, ("repositories", "keep_last", "keep_tags", "older_than", "protected"), name)
    repos = raw.get("repositories")
    if not isinstance(repos, str) or not repos:
        raise ConfigError(f"{name}.repositories: expected a glob such as \"team/*\"")
    keep_last = raw.get("keep_last")
    if keep_last is not None and (not isinstance(keep_last, int) or isinstance(keep_last, bool) or keep_last < 0):
        raise ConfigError(f"{name}.keep_last: expected a whole number >= 0, got {keep_last!r}")
    older = raw.get("older_than")
    rule = RetentionRule(
        repositories=repos,
        keep_last=keep_last,
        keep_tags=_strings(raw.get("keep_tags"), f"{name}.keep_tags"),
        older_than=parse_duration(older, f"{name}.older_than") if older is not None else None,
        protected=_strings(raw.get("protected"), f"{name}.protected"),
    )
    if rule.keep_last is None and rule.older_than is None:
        raise ConfigError(f"{name}: give keep_last, older_than or both (otherwise the rule deletes nothing)")
    return rule


def parse_retention(config: RegistryConfig) -> RetentionSettings:
    raw = _mapping(config.retention, "retention")
    _unknown(raw, ("interval", "rules"), "retention")
    rules = raw.get("rules") or []
    if not isinstance(rules, list):
        raise ConfigError("retention.rules: expected a list of rules")
    interval = parse_duration(raw.get("interval", "1h"), "retention.interval")
    if interval <= 0:
        raise ConfigError("retention.interval: must be positive")
    return RetentionSettings(interval=interval, rules=tuple(_rule(r, i) for i, r in enumerate(rules)))


def _endpoint(raw: Any, i: int, seen: set[str]) -> Endpoint:
    name = f"notifications.endpoints[{i}]"
    raw = _mapping(raw, name)
    _unknown(raw, ("name", "url", "headers", "actions", "repositories", "timeout"), name)
    ep_name, url = raw.get("name"), raw.get("url")
    if not isinstance(ep_name, str) or not re.match(r"^[A-Za-z0-9_.-]{1,100}$", ep_name):
        raise ConfigError(f"{name}.name: expected a short name (letters, digits, . _ -)")
    if ep_name in seen:
        raise ConfigError(f"{name}.name: {ep_name!r} is used twice")
    seen.add(ep_name)
    if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError(f"{name}.url: expected an http:// or https:// URL")
    headers: dict[str, list[str]] = {}
    for key, value in _mapping(raw.get("headers"), f"{name}.headers").items():
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in values):
            raise ConfigError(f"{name}.headers.{key}: expected a string or a list of strings")
        headers[str(key)] = list(values)
    actions = _strings(raw.get("actions"), f"{name}.actions") or ACTIONS
    for action in actions:
        if action not in ACTIONS:
            raise ConfigError(f"{name}.actions: {action!r} is not one of {', '.join(ACTIONS)}")
    repos = raw.get("repositories")
    if repos is not None and (not isinstance(repos, str) or not repos):
        raise ConfigError(f"{name}.repositories: expected a glob such as \"team/*\"")
    timeout = parse_duration(raw.get("timeout", "5s"), f"{name}.timeout")
    if timeout <= 0:
        raise ConfigError(f"{name}.timeout: must be positive")
    return Endpoint(ep_name, url, headers, frozenset(actions), repos, timeout)


def parse_notifications(config: RegistryConfig) -> NotificationSettings:
    raw = _mapping(config.notifications, "notifications")
    _unknown(raw, ("endpoints",), "notifications")
    endpoints = raw.get("endpoints") or []
    if not isinstance(endpoints, list):
        raise ConfigError("notifications.endpoints: expected a list")
    seen: set[str] = set()
    return NotificationSettings(tuple(_endpoint(e, i, seen) for i, e in enumerate(endpoints)))


def parse_lifecycle(config: RegistryConfig) -> LifecycleSettings:
    return LifecycleSettings(parse_gc(config), parse_retention(config), parse_notifications(config))

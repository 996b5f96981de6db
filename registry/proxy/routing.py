"""Which requests belong to the cache: ``/v2/<upstream>/<remote>/...`` and, with ``mirror``,
un-prefixed names that no local repository holds.

A cached repository is stored locally under its prefixed name (``hub/library/busybox``); the
mirror is an alias onto the same cache, so ``/v2/library/busybox/...`` through the mirror and
``/v2/hub/library/busybox/...`` share one copy. A local repository always wins over the
mirror, and a push to an un-prefixed name creates a local repository (pushes stay local).
A name under an upstream's prefix is always the cache's: a push there is refused.
"""
from __future__ import annotations

from dataclasses import dataclass

from .settings import ProxySettings, Upstream
from .upstream import UpstreamClient


@dataclass(frozen=True, slots=True)
class Target:
    upstream: Upstream
    client: UpstreamClient
    local: str  # the repository in this registry's index
    remote: str  # the repository at the upstream
    via_mirror: bool = False


class Router:
    def __init__(self, settings: ProxySettings, clients: dict[str, UpstreamClient]) -> None:
        self.settings = settings
        self.clients = clients

    def prefixed(self, name: str) -> Target | None:
        """The target of a name under an upstream's prefix (no database lookup needed)."""
        prefix, sep, remote = name.partition("/")
        up = self.settings.upstream(prefix) if sep and remote else None
        if up is None:
            return None
        return Target(up, self.clients[up.name], name, remote)

    def mirrored(self, name: str) -> Target | None:
        """The target of an un-prefixed name through the mirror (the caller checked that no local
        repository holds it)."""
        if not self.settings.mirror:
            return None
        up = self.settings.upstream(self.settings.mirror)
        assert up is not None  # validated by parse_proxy
        return Target(up, self.clients[up.name], f"{up.name}/{name}", name, via_mirror=True)

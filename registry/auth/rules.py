"""Who may do what to which repository: identities, access rules, and the one decision function.

Rights, from most to least powerful:
- an admin may pull, push and delete everything (and list the catalog unfiltered);
- a robot token may do exactly what its own scopes say (pattern + actions), nothing more;
- a user gets the union of the rules that name them (``users``, ``*`` = any signed-in user) or
  one of their groups, whose pattern matches the repository; ``{user}`` in a pattern stands for
  the user's own name (``{user}/*``: a personal namespace);
- everyone, signed in or not, may pull repositories matching an ``anonymous_pull`` pattern.

Patterns are fnmatch globs matched against the whole repository name, case-sensitively; ``*``
also crosses ``/`` (``team-a/*`` covers ``team-a/x/y``).
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Iterable

ACTIONS = ("pull", "push", "delete")
ALL_ACTIONS = frozenset(ACTIONS)
_PATTERN_CHARS = re.compile(r"^[a-z0-9._/*?\[\]{}!-]+$")


def check_pattern(pattern: str, where: str) -> None:
    from ..config import ConfigError

    if not _PATTERN_CHARS.match(pattern) or ("{" in pattern and "{user}" not in pattern):
        raise ConfigError(f"{where}: {pattern!r} is not a repository glob (lowercase name characters, * ? [] and {{user}})")


@dataclass(frozen=True)
class Rule:
    pattern: str
    users: frozenset[str]
    groups: frozenset[str]
    actions: frozenset[str]


@dataclass(frozen=True)
class RobotScope:
    pattern: str
    actions: frozenset[str]


@dataclass(frozen=True)
class Identity:
    """Who is asking. ``name`` None is the anonymous caller; robots are named ``robot$NAME``."""

    name: str | None = None
    groups: frozenset[str] = frozenset()
    admin: bool = False
    robot_scopes: tuple[RobotScope, ...] | None = None  # None: not a robot
    # When the password (or robot) was last changed: refresh tokens older than this die.
    changed_at: float = 0.0
    via: str = field(default="", compare=False)  # "password", "robot", "token", "session"

    @property
    def anonymous(self) -> bool:
        return self.name is None

    @property
    def is_robot(self) -> bool:
        return self.robot_scopes is not None


ANONYMOUS = Identity()


def _matches(pattern: str, repo: str, user: str | None) -> bool:
    if "{user}" in pattern:
        if not user or user.startswith("robot$"):
            return False
        pattern = pattern.replace("{user}", _escape(user))
    return fnmatch.fnmatchcase(repo, pattern)


def _escape(text: str) -> str:
    return re.sub(r"([*?\[\]])", r"[\1]", text)


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...] = ()
    anonymous_pull: tuple[str, ...] = ()
    admins: frozenset[str] = frozenset()

    def is_public(self, repo: str) -> bool:
        return any(fnmatch.fnmatchcase(repo, p) for p in self.anonymous_pull)

    def is_admin(self, who: Identity) -> bool:
        return not who.anonymous and not who.is_robot and (who.admin or who.name in self.admins)

    def allowed_actions(self, who: Identity, repo: str) -> frozenset[str]:
        if self.is_admin(who):
            return ALL_ACTIONS
        granted: set[str] = {"pull"} if self.is_public(repo) else set()
        if who.is_robot:
            for scope in who.robot_scopes or ():
                if fnmatch.fnmatchcase(repo, scope.pattern):
                    granted |= scope.actions
            return frozenset(granted)
        if who.anonymous:
            return frozenset(granted)
        for rule in self.rules:
            named = "*" in rule.users or who.name in rule.users or bool(rule.groups & who.groups)
            if named and _matches(rule.pattern, repo, who.name):
                granted |= rule.actions
        return frozenset(granted)

    def can(self, who: Identity, repo: str, action: str) -> bool:
        return action in self.allowed_actions(who, repo)

    def grant(self, who: Identity, repo: str, wanted: Iterable[str]) -> list[str]:
        """The subset of ``wanted`` actions ``who`` holds on ``repo``, in a stable order."""
        have = self.allowed_actions(who, repo)
        wanted = set(wanted)
        if "*" in wanted:
            wanted |= ALL_ACTIONS
        return [a for a in ACTIONS if a in wanted and a in have]

"""Credentials -> ``Identity``: users in the index, an htpasswd file, robot tokens.

``Authenticator.login(user, password, client)`` is the one place a password is checked. It
applies the failed-login limit per client and per user name, counting each attempt before the
(slow) check so concurrent guesses cannot all slip under the limit, and keeps a short cache of successful bcrypt checks
(keyed by an HMAC of the credentials under a per-process random key, never the password itself,
and valid only while the stored hash is unchanged), so Basic mode does not pay bcrypt on every
request of a push.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from pathlib import Path

from ..index.auth_queries import AuthQueries, RobotRecord, UserRecord
from .passwords import ROBOT_PREFIX, HtpasswdFile, robot_secret_matches, verify_password
from .ratelimit import FailedLogins
from .rules import Identity, RobotScope
from .settings import AuthSettings

log = logging.getLogger("registry.auth")
CACHE_TTL = 60.0
CACHE_MAX = 10_000
USER_LIMIT_FACTOR = 5  # failed logins per user name per window: this x the per-client limit


Keys = tuple[tuple[FailedLogins, str], ...]  # (the limit, its key) for each limit an attempt counts against


class TooManyFailures(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; retry in {retry_after}s")
        self.retry_after = retry_after


def user_identity(user: UserRecord, via: str) -> Identity:
    return Identity(user.name, frozenset(user.groups), user.is_admin, None, user.password_changed_at, via)


def robot_identity(robot: RobotRecord, via: str) -> Identity | None:
    now = time.time()
    if robot.revoked_at is not None or (robot.expires_at is not None and robot.expires_at <= now):
        return None
    scopes = tuple(RobotScope(str(s.get("pattern", "")), frozenset(s.get("actions") or ()))
                   for s in robot.scopes if isinstance(s, dict))
    return Identity(ROBOT_PREFIX + robot.name, frozenset(), False, scopes, robot.created_at, via)


class Authenticator:
    def __init__(self, settings: AuthSettings, queries: AuthQueries) -> None:
        self.settings, self.queries = settings, queries
        self.htpasswd = HtpasswdFile(Path(settings.htpasswd)) if settings.htpasswd else None
        self.failures = FailedLogins(settings.failed_login_limit, settings.failed_login_window)
        # Per user name too, so guessing one password from many addresses is bounded; higher,
        # so that one client's guesses cannot lock a user out for everyone else.
        self.user_failures = FailedLogins(settings.failed_login_limit * USER_LIMIT_FACTOR, settings.failed_login_window)
        self._cache_key = secrets.token_bytes(32)
        self._cache: dict[bytes, tuple[float, str]] = {}

    # -- by name (tokens and sessions carry only the subject) ---------------------------------
    async def lookup(self, name: str) -> Identity | None:
        """The current identity of ``name`` (None when it no longer exists or was revoked)."""
        if name.startswith(ROBOT_PREFIX):
            robot = await self.queries.get_robot(name[len(ROBOT_PREFIX):])
            return robot_identity(robot, "token") if robot else None
        user = await self.queries.get_user(name)
        if user is not None:
            return user_identity(user, "token")
        if self.htpasswd is not None and self.htpasswd.get(name) is not None:
            return Identity(name, frozenset(), False, None, 0.0, "token")
        return None

    # -- by password --------------------------------------------------------------------------
    def _cache_slot(self, name: str, password: str) -> bytes:
        return hmac.new(self._cache_key, f"{name}\0{password}".encode(), hashlib.sha256).digest()

    async def login(self, name: str, password: str, client: str) -> Identity | None:
        """The identity for these credentials, or None (and one more failure for ``client`` and
        for the user name). Raises TooManyFailures while either is over the limit."""
        keys = ((self.failures, client), (self.user_failures, name[:128]))
        wait = max(limits.retry_after(key) for limits, key in keys)
        if wait:
            raise TooManyFailures(wait)
        if len(name) > 128 or len(password) > 1024:
            self.failures.record_failure(client)
            return None
        who = await self._check(name, password, keys)
        if who is None:
            log.warning("failed login for %r from %s", name[:64], client)
        return who

    @staticmethod
    def _counted(keys: Keys) -> float:
        """Count this attempt now, before the password is checked (see ratelimit.py)."""
        wait = max(limits.retry_after(key) for limits, key in keys)
        if wait:
            raise TooManyFailures(wait)
        stamp = keys[0][0].clock()
        for limits, key in keys:
            limits.record_failure(key, stamp)  # a failure until forgiven
        return stamp

    @staticmethod
    def _forgive(keys: Keys, stamp: float) -> None:
        for limits, key in keys:
            limits.forgive(stamp, key)

    async def _check(self, name: str, password: str, keys: Keys) -> Identity | None:
        if name.startswith(ROBOT_PREFIX):
            robot = await self.queries.get_robot(name[len(ROBOT_PREFIX):])
            stamp = self._counted(keys)
            if robot is None or not robot_secret_matches(password, robot.secret_sha256):
                return None
            self._forgive(keys, stamp)
            return robot_identity(robot, "robot")
        user = await self.queries.get_user(name)
        hashed = user.password_hash if user else (self.htpasswd.get(name) if self.htpasswd else None)
        if not await self._verify(name, password, hashed, keys):
            return None
        if user is not None:
            return user_identity(user, "password")
        return Identity(name, frozenset(), False, None, 0.0, "password")

    async def _verify(self, name: str, password: str, hashed: str | None, keys: Keys) -> bool:
        """bcrypt, remembered for a minute per (credentials, current hash): a changed password
        or a removed user fails at once, since the current hash is read every time. A remembered
        success costs no bcrypt and counts no attempt (a push in Basic mode logs in per request)."""
        slot = self._cache_slot(name, password)
        cached = self._cache.get(slot)
        if hashed and cached and cached[0] > time.monotonic() and hmac.compare_digest(cached[1], hashed):
            return True
        stamp = self._counted(keys)
        if not await asyncio.to_thread(verify_password, password, hashed):
            return False
        self._forgive(keys, stamp)
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()
        self._cache[slot] = (time.monotonic() + CACHE_TTL, hashed or "")
        return True

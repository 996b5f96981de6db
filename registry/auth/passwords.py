"""Passwords: bcrypt hashing, htpasswd files (the bcrypt ``$2y$`` lines distribution reads),
robot secrets, and name rules.

bcrypt is deliberately slow (~0.2 s at cost 12): callers on the event loop run ``verify`` in a
worker thread (``asyncio.to_thread``). A dummy hash is checked for unknown users so the time a
login takes does not tell whether the user exists.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path


BCRYPT_COST = 12
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
ROBOT_PREFIX = "robot$"
ROBOT_SECRET_PREFIX = "dyr_"
MAX_PASSWORD = 1024
_dummy_hashes: dict[int, bytes] = {}


class PasswordError(ValueError):
    pass


def check_name(name: str, what: str = "user name") -> str:
    if not NAME_RE.match(name or ""):
        raise PasswordError(f"{what} {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit")
    return name


def hash_password(password: str, cost: int = BCRYPT_COST) -> str:
    data = password.encode()
    if not password:
        raise PasswordError("the password must not be empty")
    if len(data) > 72:
        # bcrypt ignores bytes after the 72nd: refuse rather than silently accept prefixes.
        raise PasswordError("the password is longer than 72 bytes (bcrypt's limit)")
    import bcrypt  # here, not at the top: with auth off the registry never loads it

    return bcrypt.hashpw(data, bcrypt.gensalt(cost)).decode()


def verify_password(password: str, hashed: str | None) -> bool:
    """Constant work whether or not ``hashed`` exists; False for anything not bcrypt."""
    data = password.encode()[:MAX_PASSWORD]
    if not hashed or not hashed.startswith(("$2a$", "$2b$", "$2y$")) or len(data) > 72:
        _dummy_check()
        return False
    import bcrypt

    try:
        return bcrypt.checkpw(data, hashed.encode())
    except ValueError:
        return False


def _dummy_check(cost: int = BCRYPT_COST) -> None:
    """As slow as checking a real password of the default cost (made once, on first use)."""
    import bcrypt

    if cost not in _dummy_hashes:
        _dummy_hashes[cost] = bcrypt.hashpw(b"dockyard-dummy", bcrypt.gensalt(cost))
    bcrypt.checkpw(b"x", _dummy_hashes[cost])


# -- robot secrets ----------------------------------------------------------------------------
def new_robot_secret() -> str:
    return ROBOT_SECRET_PREFIX + secrets.token_urlsafe(32)


def robot_secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def robot_secret_matches(secret: str, digest: str) -> bool:
    return hmac.compare_digest(robot_secret_digest(secret), digest)


# -- htpasswd ---------------------------------------------------------------------------------
def parse_htpasswd(text: str, origin: str = "htpasswd") -> dict[str, str]:
    """``user:$2y$...`` lines -> {user: hash}. Only bcrypt entries are accepted (as in
    distribution); other formats (MD5 ``$apr1$``, SHA1, crypt) are refused by line number."""
    users: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, hashed = line.partition(":")
        if not sep or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise PasswordError(f"{origin}:{n}: not a 'user:bcrypt-hash' line (create it with htpasswd -B)")
        check_name(name)
        users[name] = hashed
    return users


@dataclass
class HtpasswdFile:
    """An htpasswd file used as is: re-read when its modification time or size changes."""

    path: Path
    _stamp: tuple[float, int] | None = None
    _users: dict[str, str] = field(default_factory=dict)

    def users(self) -> dict[str, str]:
        try:
            st = os.stat(self.path)
        except OSError:
            return {}
        stamp = (st.st_mtime, st.st_size)
        if stamp != self._stamp:
            self._users = parse_htpasswd(self.path.read_text(encoding="utf-8"), str(self.path))
            self._stamp = stamp
        return self._users

    def get(self, name: str) -> str | None:
        return self.users().get(name)

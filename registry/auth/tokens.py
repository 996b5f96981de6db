"""The token service: a signing key, access tokens as Docker's token spec describes them, and
refresh/session tokens.

Access token (JWT, header ``{"alg": "ES256"|"RS256", "typ": "JWT", "kid": ...}``)::

    {"iss": issuer, "sub": "alice", "aud": service, "exp", "nbf", "iat", "jti",
     "access": [{"type": "repository", "name": "team-a/app", "actions": ["pull", "push"]}]}

Refresh tokens (what ``docker login`` keeps as its identity token) and catalog session cookies
are JWTs from the same key with a different audience (``<service>#refresh``/``#session``), so
one can never be used as the other. Verification pins the algorithm to the key's (no ``none``,
no HS256 with the public key as secret), requires every time claim, and checks audience,
issuer and ``kid``.
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# jwt and cryptography (OpenSSL's bindings, ~20 MiB resident) are imported inside the functions
# that sign or verify: with auth off (the default) the registry never loads them.

LEEWAY = 10  # seconds of clock skew tolerated between replicas
VERIFIED_CACHE = 10_000
REQUIRED = ["exp", "nbf", "iat", "iss", "aud", "sub", "jti"]
SCOPE_RE = re.compile(r"^(repository|registry)(\(\w+\))?:(.+):([a-z*,]*)$")


class TokenError(Exception):
    """The token is not acceptable; the message is safe to show (names no secret)."""


@dataclass(frozen=True)
class Scope:
    type: str       # "repository" or "registry"
    name: str       # repository name, or "catalog"
    actions: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def parse_scopes(values: list[str]) -> list[Scope]:
    """``scope`` query values (each may hold several space-separated scopes) -> Scopes; malformed
    ones are dropped, as the token spec lets a server grant less than asked."""
    out: list[Scope] = []
    for value in values:
        for item in value.split():
            # The name may itself hold a ':' only as "host:port/..." which repositories here never do.
            m = SCOPE_RE.match(item)
            if not m or len(item) > 512:
                continue
            actions = tuple(a for a in m.group(4).split(",") if a)
            out.append(Scope(m.group(1), m.group(3), actions))
    return out


def _load_key(path: Path):
    from cryptography.hazmat.primitives import serialization

    from ..config import ConfigError

    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as e:
        raise ConfigError(f"auth.token_key {path}: cannot read: {e.strerror}") from None
    except (ValueError, TypeError):
        raise ConfigError(f"auth.token_key {path}: not an unencrypted PEM private key") from None


def _load_or_create_key(path: Path, key_type: str):
    if path.exists():
        return _load_key(path)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = ec.generate_private_key(ec.SECP256R1()) if key_type == "ec" else rsa.generate_private_key(65537, 3072)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)  # first writer wins when replicas start together
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return _load_key(path)


def key_id(public_key) -> str:
    """libtrust-style key id: the SHA-256 of the DER public key, base32 in 12 groups of 4."""
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i:i + 4] for i in range(0, 48, 4))


def _algorithm(key, path) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
        return "ES256"
    from ..config import ConfigError

    raise ConfigError(f"auth.token_key {path}: expected an RSA or EC P-256 private key")


class TokenService:
    """Signs with one key; verifies with it and with ``previous_keys`` (PEM private key files
    of earlier signing keys), so a key can be rotated without signing everybody out: move the
    old file to previous_keys, and drop it once refresh_ttl has passed."""

    def __init__(self, key_path: str | Path, key_type: str, issuer: str, service: str,
                 ttl: float, refresh_ttl: float, session_ttl: float,
                 previous_keys: tuple[str, ...] = ()) -> None:
        self.key = _load_or_create_key(Path(key_path), key_type)
        self.alg = _algorithm(self.key, key_path)
        self.public_key = self.key.public_key()
        self.kid = key_id(self.public_key)
        # kid -> (algorithm, public key) of every key whose tokens are accepted
        self.verify_keys = {self.kid: (self.alg, self.public_key)}
        for old in previous_keys:
            key = _load_key(Path(old))
            self.verify_keys.setdefault(key_id(key.public_key()), (_algorithm(key, old), key.public_key()))
        self.issuer, self.service = issuer, service
        self.ttl, self.refresh_ttl, self.session_ttl = ttl, refresh_ttl, session_ttl
        self._verified: dict[str, dict[str, Any]] = {}

    # -- issuing ------------------------------------------------------------------------------
    def _sign(self, sub: str, audience: str, ttl: float, extra: dict[str, Any]) -> tuple[str, int, int]:
        import jwt

        now = int(time.time())
        claims = {"iss": self.issuer, "sub": sub, "aud": audience, "iat": now, "nbf": now - 1,
                  "exp": now + int(ttl), "jti": secrets.token_urlsafe(16), **extra}
        token = jwt.encode(claims, self.key, algorithm=self.alg, headers={"kid": self.kid, "typ": "JWT"})
        return token, now, int(ttl)

    def issue_access(self, sub: str, access: list[dict[str, Any]]) -> tuple[str, int, int]:
        """-> (token, issued_at, expires_in)."""
        return self._sign(sub, self.service, self.ttl, {"access": access})

    def issue_refresh(self, sub: str) -> str:
        return self._sign(sub, f"{self.service}#refresh", self.refresh_ttl, {})[0]

    def issue_session(self, sub: str) -> str:
        return self._sign(sub, f"{self.service}#session", self.session_ttl, {})[0]

    # -- verifying ----------------------------------------------------------------------------
    def _verify(self, token: str, audience: str) -> dict[str, Any]:
        import jwt

        if len(token) > 16384:
            raise TokenError("token too large")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("malformed token") from None
        alg, public_key = self.verify_keys.get(str(header.get("kid")), (None, None))
        if alg is None or header.get("alg") != alg:
            raise TokenError("token not signed by this registry's key")
        try:
            claims = jwt.decode(token, public_key, algorithms=[alg], audience=audience,
                                issuer=self.issuer, leeway=LEEWAY, options={"require": REQUIRED})
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.InvalidAudienceError:
            raise TokenError("token is for another service") from None
        except jwt.InvalidIssuerError:
            raise TokenError("token from another issuer") from None
        except jwt.PyJWTError:
            raise TokenError("invalid token") from None
        if not isinstance(claims.get("sub"), str):
            raise TokenError("invalid token subject")
        return claims

    def verify_access(self, token: str) -> dict[str, Any]:
        # A push or pull sends the same token dozens of times: remember verified tokens (by
        # their exact bytes) until they expire, instead of checking the signature each time.
        cached = self._verified.get(token)
        if cached is not None:
            if cached["exp"] + LEEWAY > time.time():
                return cached
            del self._verified[token]
        claims = self._verify(token, self.service)
        if not isinstance(claims.get("access", []), list):
            raise TokenError("invalid access claim")
        if len(self._verified) >= VERIFIED_CACHE:
            self._verified.clear()
        self._verified[token] = claims
        return claims

    def verify_refresh(self, token: str) -> dict[str, Any]:
        return self._verify(token, f"{self.service}#refresh")

    def verify_session(self, token: str) -> dict[str, Any]:
        return self._verify(token, f"{self.service}#session")


def granted_actions(claims: dict[str, Any], type_: str, name: str) -> set[str] | None:
    """Actions the token's ``access`` claim grants on (type, name); None when it names none of it
    (the client asked for another scope: a fresh challenge may get it the right token)."""
    found: set[str] | None = None
    for entry in claims.get("access") or []:
        if not isinstance(entry, dict) or entry.get("type") != type_ or entry.get("name") != name:
            continue
        actions = entry.get("actions") or []
        found = (found or set()) | {a for a in actions if isinstance(a, str)}
    return found

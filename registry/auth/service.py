"""``AuthService``: everything auth needs at run time, built once the index is open.

Kept on the app under ``AUTH`` (a typed key); the middleware, the token endpoint, the login
page and the catalog's visibility filter all go through it.
"""
from __future__ import annotations

import base64
import binascii
import re
from ipaddress import ip_address

from aiohttp import web

from ..index.auth_queries import AuthQueries
from ..state import IDENTITY  # noqa: F401 - the request key of the caller's Identity, re-exported
from .identities import Authenticator
from .rules import ANONYMOUS, Identity, Policy
from .settings import AuthSettings
from .tokens import TokenError, TokenService

SESSION_COOKIE = "dockyard_session"
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


class AuthService:
    def __init__(self, settings: AuthSettings, queries: AuthQueries, tokens: TokenService) -> None:
        self.settings = settings
        self.queries = queries
        self.tokens = tokens
        self.policy = Policy(settings.rules, settings.anonymous_pull, frozenset(settings.admins))
        self.authenticator = Authenticator(settings, queries)

    # -- what the challenge says ---------------------------------------------------------------
    def realm(self, request: web.Request) -> str:
        if self.settings.realm:
            return self.settings.realm
        # The Host header is the client's own; still, never let it break out of the quoted
        # challenge parameter.
        host = request.host if _HOST_RE.match(request.host or "") else "localhost"
        return f"{request.scheme}://{host}/token"

    def challenge(self, request: web.Request, scope: str | None = None, error: str | None = None) -> str:
        if self.settings.mode == "basic":
            return f'Basic realm="{self.settings.service}"'
        parts = [f'realm="{self.realm(request)}"', f'service="{self.settings.service}"']
        if scope:
            parts.append(f'scope="{scope}"')
        if error:
            parts.append(f'error="{error}"')
        return "Bearer " + ",".join(parts)

    # -- identities from a request ------------------------------------------------------------
    async def identity_from_token(self, token: str) -> Identity | None:
        """A signed-in identity behind an access token, looked up fresh (for catalog pages)."""
        try:
            claims = self.tokens.verify_access(token)
        except TokenError:
            return None
        return await self.authenticator.lookup(claims["sub"]) if claims["sub"] else ANONYMOUS

    async def identity_from_session(self, request: web.Request) -> Identity | None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        try:
            claims = self.tokens.verify_session(cookie)
        except TokenError:
            return None
        who = await self.authenticator.lookup(claims["sub"])
        if who is None or who.changed_at > claims["iat"] + 1:
            return None
        return who


AUTH: web.AppKey[AuthService] = web.AppKey("auth_service", AuthService)


def client_address(request: web.Request) -> str:
    """Who to count failed logins against: the peer address, or, when the peer is a trusted
    proxy (``auth.trusted_proxies``), the nearest X-Forwarded-For hop that is not one. Hops a
    client wrote itself (left of the first untrusted one) are never believed."""
    remote = request.remote or "unknown"
    proxies = request.app[AUTH].settings.trusted_proxies if AUTH in request.app else ()
    if not proxies or not _trusted(remote, proxies):
        return remote
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop[:64]
    return remote


def _trusted(address: str, proxies) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def basic_credentials(header: str) -> tuple[str, str] | None:
    """``Basic base64(user:password)`` -> (user, password); None when malformed."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or not user:
        return None
    return user, password


def bearer_token(header: str) -> str | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()

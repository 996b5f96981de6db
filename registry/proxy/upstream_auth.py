"""How the cache signs in to an upstream: anonymous, Basic, or the Bearer token flow.

The flow is the one every registry client follows: send the request; on a 401 read the
``WWW-Authenticate`` challenge. ``Basic`` -> resend with the upstream entry's credentials.
``Bearer realm=..,service=..,scope=..`` -> GET the realm with ``service`` and the scope of the
repository at hand (``repository:<remote>:pull``; Basic credentials if the entry has them,
anonymous otherwise) and resend with the token. Tokens are cached per scope until shortly before
they expire, so a warm cache asks the token server once per repository and token lifetime.
"""
from __future__ import annotations

import base64
import re
import time

import aiohttp
from yarl import URL

from .settings import Upstream

_PARAM_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
DEFAULT_TOKEN_TTL = 60.0


class UpstreamAuthError(Exception):
    """The upstream's token server refused or could not be reached."""


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """('bearer', {'realm': ..., 'service': ..., 'scope': ...}) from a WWW-Authenticate value."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)) for m in _PARAM_RE.finditer(rest)}
    return scheme.lower(), params


def pull_scope(remote_name: str) -> str:
    return f"repository:{remote_name}:pull"


class UpstreamAuth:
    """The Authorization header to send for one scope, learnt from the upstream's challenges."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self._tokens: dict[str, tuple[str, float]] = {}  # scope -> (header, expires at)
        self._basic_wanted = False

    def _basic(self) -> str | None:
        if not self.upstream.username:
            return None
        raw = f"{self.upstream.username}:{self.upstream.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def header(self, scope: str) -> str | None:
        """What to send first: a cached token, Basic if the upstream asked for it, else nothing."""
        cached = self._tokens.get(scope)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        return self._basic() if self._basic_wanted else None

    async def answer(self, session: aiohttp.ClientSession, challenge: str, scope: str,
                     timeout: aiohttp.ClientTimeout) -> str | None:
        """The header that answers a 401's challenge, or None when there is no answer to give."""
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            self._basic_wanted = True
            return self._basic()
        if scheme != "bearer" or not params.get("realm"):
            return None
        query = {"scope": scope}
        if params.get("service"):
            query["service"] = params["service"]
        headers = {}
        basic = self._basic()
        if basic:
            headers["Authorization"] = basic
        try:
            async with session.get(URL(params["realm"]).update_query(query), headers=headers, timeout=timeout) as resp:
                if resp.status != 200:
                    raise UpstreamAuthError(f"token server answered {resp.status}")
                doc = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise UpstreamAuthError(f"token server failed: {e.__class__.__name__}: {e}") from None
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise UpstreamAuthError("token server answered without a token")
        try:
            ttl = float(doc.get("expires_in") or DEFAULT_TOKEN_TTL)
        except (TypeError, ValueError):
            ttl = DEFAULT_TOKEN_TTL
        header = f"Bearer {token}"
        # Renew a little early: a token that expires in flight costs a round trip and a 401.
        self._tokens[scope] = (header, time.monotonic() + max(1.0, ttl - 10))
        return header

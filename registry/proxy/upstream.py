"""The HTTP client of one upstream registry (aiohttp), with its failure policy in one place.

Everything that means "the upstream cannot answer this now" becomes ``UpstreamUnavailable``
(connection refused or reset, no answer within the entry's ``timeout``, a 5xx, a 429, a token
server that fails, a refusal of our credentials); the callers then serve what the cache holds or
tell the client to retry. A 404 is an answer (``UpstreamNotFound``): the upstream does not have
the thing. The timeout bounds connecting and each read (``sock_read``), not a whole blob
download: a big layer on a slow link is not an upstream that is down; a stalled one is.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

from oci import mediatypes as mt

from .settings import Upstream
from .upstream_auth import UpstreamAuth, UpstreamAuthError, pull_scope

USER_AGENT = "dockyard-registry-proxy"
MANIFEST_ACCEPT = ", ".join([mt.OCI_INDEX, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST])


class UpstreamUnavailable(Exception):
    """The upstream did not answer usefully; ``status`` is the HTTP status it gave, if any."""

    def __init__(self, upstream: str, reason: str, status: int | None = None, retry_after: str | None = None) -> None:
        super().__init__(f"upstream {upstream} {reason}")
        self.upstream, self.status, self.retry_after = upstream, status, retry_after

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500


class UpstreamNotFound(Exception):
    pass


@dataclass(frozen=True, slots=True)
class ManifestAnswer:
    digest: str | None  # Docker-Content-Digest, when the upstream sent one
    media_type: str
    body: bytes  # empty for HEAD


class UpstreamClient:
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.auth = UpstreamAuth(upstream)
        self.session: aiohttp.ClientSession | None = None
        self.quick = aiohttp.ClientTimeout(total=upstream.timeout)
        self.streaming = aiohttp.ClientTimeout(total=None, sock_connect=upstream.timeout, sock_read=upstream.timeout)

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(limit=64, ttl_dns_cache=300)
        # A 1 MiB read buffer: blobs arrive in fewer, bigger pieces (less Python per byte).
        self.session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT},
                                             auto_decompress=False, read_bufsize=1 << 20)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def _down(self, reason: str, status: int | None = None, retry_after: str | None = None) -> UpstreamUnavailable:
        return UpstreamUnavailable(self.upstream.name, reason, status, retry_after)

    async def send(self, method: str, remote: str, path: str, headers: dict[str, str] | None = None,
                   stream: bool = False) -> aiohttp.ClientResponse:
        """``method {url}/v2/{remote}/{path}``, signed in as the upstream asks. The caller owns
        the response (release it). Raises UpstreamUnavailable / UpstreamNotFound."""
        assert self.session is not None, "upstream client not opened"
        url = f"{self.upstream.url}/v2/{remote}/{path}"
        scope = pull_scope(remote)
        timeout = self.streaming if stream else self.quick
        hdrs = dict(headers or {})
        for attempt in (1, 2):
            auth = self.auth.header(scope)
            if auth:
                hdrs["Authorization"] = auth
            try:
                resp = await self.session.request(method, url, headers=hdrs, timeout=timeout, allow_redirects=True)
            except (asyncio.TimeoutError, TimeoutError):
                raise self._down(f"did not answer within {self.upstream.timeout:g}s") from None
            except aiohttp.ClientError as e:
                raise self._down(f"is unreachable ({e.__class__.__name__})") from None
            if resp.status == 401 and attempt == 1:
                challenge = resp.headers.get("WWW-Authenticate", "")
                resp.release()
                try:
                    answer = await self.auth.answer(self.session, challenge, scope, self.quick)
                except UpstreamAuthError as e:
                    raise self._down(f"refused to sign us in: {e}", 401) from None
                if answer is None:
                    raise self._down("asks for credentials it gives no way to present", 401)
                hdrs["Authorization"] = answer
                continue
            return self._check(resp)
        raise AssertionError("unreachable")

    def _check(self, resp: aiohttp.ClientResponse) -> aiohttp.ClientResponse:
        if resp.status < 300:
            return resp
        resp.release()
        if resp.status == 404:
            raise UpstreamNotFound()
        if resp.status == 429:
            raise self._down("answered 429", 429, resp.headers.get("Retry-After"))
        if resp.status in (401, 403):
            raise self._down(f"refused access ({resp.status}); check the credentials of upstream "
                             f"{self.upstream.name}", resp.status)
        raise self._down(f"answered {resp.status}", resp.status)

    async def manifest(self, remote: str, reference: str, method: str = "GET") -> ManifestAnswer:
        resp = await self.send(method, remote, f"manifests/{reference}", {"Accept": MANIFEST_ACCEPT})
        try:
            body = await resp.read() if method == "GET" else b""
        except (asyncio.TimeoutError, TimeoutError, aiohttp.ClientError) as e:
            raise self._down(f"broke off a manifest ({e.__class__.__name__})") from None
        finally:
            resp.release()
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        return ManifestAnswer(resp.headers.get("Docker-Content-Digest"), media_type, body)

    async def blob(self, remote: str, digest: str) -> aiohttp.ClientResponse:
        """An open streaming response for the blob (the caller reads and releases it)."""
        return await self.send("GET", remote, f"blobs/{digest}", stream=True)

    async def tags(self, remote: str) -> bytes:
        resp = await self.send("GET", remote, "tags/list")
        try:
            return await resp.read()
        finally:
            resp.release()

"""An OCI distribution client (aiohttp): auth challenges, manifests, verified and resumable
blob downloads, blob uploads (HEAD first, cross-repository mount, chunked PATCH) and manifest PUT.

Transport: plain HTTP for loopback hosts (127.0.0.0/8, localhost, ::1) and for hosts listed in
``$DOCKYARD_INSECURE_REGISTRIES`` (comma separated ``host[:port]``); HTTPS otherwise (and for
hosts in ``$DOCKYARD_TLS_REGISTRIES``, even on loopback), verified
against the system CAs plus ``$DOCKYARD_CA_FILE`` (or the ``ca_file`` argument) when given.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import os
import ssl
from pathlib import Path
from typing import Callable

import aiohttp
from yarl import URL

from oci import mediatypes as mt
from oci.digest import Digest, Hasher, InvalidDigest

from . import auth
from .content import ContentStore
from .errors import AuthError, DigestMismatch, ImageError, RegistryError

MANIFEST_ACCEPT = ", ".join([mt.OCI_INDEX, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST])
CHUNK_SIZE = 16 << 20
DOWNLOAD_RETRIES = 5
Progress = Callable[[int], None]  # called with the number of bytes done so far


def describe_connection_error(e: BaseException) -> str:
    """A network failure in a user's words: "connection refused", not aiohttp's repr."""
    if isinstance(e, asyncio.TimeoutError):
        return "timed out"
    if isinstance(e, aiohttp.ClientSSLError):
        return f"TLS handshake failed ({getattr(e, 'os_error', e)})".replace("\n", " ")
    cause = getattr(e, "os_error", None) or (e if isinstance(e, OSError) else None)
    if isinstance(cause, OSError) and cause.errno:
        return os.strerror(cause.errno).lower()
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    if isinstance(e, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    return str(e) or e.__class__.__name__


def _listed(variable: str, host: str, hostname: str) -> bool:
    listed = {h.strip() for h in os.environ.get(variable, "").split(",") if h.strip()}
    return host in listed or hostname in listed


def is_insecure(host: str) -> bool:
    hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]")[0]
    if _listed("DOCKYARD_TLS_REGISTRIES", host, hostname):  # e.g. TLS on a loopback tunnel
        return False
    if hostname == "localhost":
        return True
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(hostname).is_loopback:
            return True
    return _listed("DOCKYARD_INSECURE_REGISTRIES", host, hostname)


def scope_for(repo: str, push: bool = False) -> str:
    return f"repository:{repo}:{'pull,push' if push else 'pull'}"


class RegistryClient:
    def __init__(self, host: str, ca_file: str | None = None, credentials: auth.Credentials | None = None) -> None:
        self.host = host
        api_host = "registry-1.docker.io" if host == "docker.io" else host
        self.base = URL(f"{'http' if is_insecure(host) else 'https'}://{api_host}")
        self.credentials = credentials if credentials is not None else auth.lookup(host)
        self.ca_file = ca_file or os.environ.get("DOCKYARD_CA_FILE")
        self._auth: dict[str, str] = {}   # scope -> Authorization header value
        self._basic = False               # the registry asked for Basic: send it everywhere
        self._refused = ""                # why the token server refused our credentials, once
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "RegistryClient":
        ssl_ctx: ssl.SSLContext | bool = True
        if self.base.scheme == "https" and self.ca_file:
            ssl_ctx = ssl.create_default_context()  # the system CAs, plus:
            ssl_ctx.load_verify_locations(cafile=self.ca_file)
        connector = aiohttp.TCPConnector(ssl=ssl_ctx if self.base.scheme == "https" else False, limit=8)
        timeout = aiohttp.ClientTimeout(total=None, connect=15, sock_read=60)
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout,
                                             headers={"User-Agent": "dockyard/0.1"})
        return self

    async def __aexit__(self, *exc) -> None:
        if self.session is not None:
            await self.session.close()

    # -- requests with auth ---------------------------------------------------------------

    def url(self, path: str) -> URL:
        return self.base.with_path(path, encoded=False)

    async def request(self, method: str, url: URL | str, scopes: list[str], *, expect: tuple[int, ...] = (),
                      **kwargs) -> aiohttp.ClientResponse:
        """Send, answering one 401 challenge. The caller reads and releases the response."""
        assert self.session is not None, "use 'async with RegistryClient(...)'"
        key = " ".join(scopes)
        headers = dict(kwargs.pop("headers", {}) or {})
        # Credentials go only to the registry itself, never to a host a Location header names.
        ours = URL(url).host == self.base.host and URL(url).port == self.base.port
        for attempt in range(2):
            if not ours:
                pass
            elif self._basic and self.credentials:
                headers["Authorization"] = self.credentials.basic_header()
            elif key in self._auth:
                headers["Authorization"] = self._auth[key]
            try:
                resp = await self.session.request(method, url, headers=headers, **kwargs)
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError, OSError) as e:
                raise RegistryError(f"cannot reach registry {self.host}: {describe_connection_error(e)}") from None
            if resp.status != 401 or attempt == 1:
                break
            challenge = resp.headers.get("WWW-Authenticate", "")
            resp.release()
            await self._answer(challenge, scopes, key)
            if "data" in kwargs and hasattr(kwargs["data"], "seek"):
                kwargs["data"].seek(0)
        if resp.status == 401:
            resp.release()
            raise AuthError(f"authentication required by {self.host}: "
                            + ("credentials were refused" if self.credentials else f"run 'dockyard login {self.host}'"))
        if expect and resp.status not in expect:
            detail = await _error_detail(resp)
            if resp.status == 403:
                raise AuthError(f"{self.host} denied access: {detail}")
            raise RegistryError(f"{method} {URL(url).path} on {self.host}: HTTP {resp.status} {detail}".rstrip())
        return resp

    async def _answer(self, challenge: str, scopes: list[str], key: str) -> None:
        scheme, params = auth.parse_challenge(challenge)
        if self._refused:
            # The token server already said no to these credentials: asking again would only
            # count more failed logins against the account (and trip the registry's lockout).
            raise AuthError(self._refused)
        if scheme == "basic":
            if not self.credentials or not self.credentials.password:
                raise AuthError(f"authentication required by {self.host}: run 'dockyard login {self.host}'")
            self._basic = True
            return
        if scheme != "bearer" or not params.get("realm"):
            raise AuthError(f"{self.host} asks for unsupported authentication {challenge!r}")
        scope_list = scopes or ([params["scope"]] if params.get("scope") else [])
        creds = self.credentials
        try:
            if creds and creds.identity_token:
                # docker login's identity token is an OAuth2 refresh token (docker's own flow).
                form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                        "client_id": "dockyard", "scope": " ".join(scope_list)}
                if params.get("service"):
                    form["service"] = params["service"]
                request = self.session.post(URL(params["realm"]), data=form)
            else:
                query = [("service", params["service"])] if params.get("service") else []
                query += [("scope", s) for s in scope_list]
                headers = {"Authorization": creds.basic_header()} if creds else {}
                request = self.session.get(URL(params["realm"]).update_query(query), headers=headers)
            async with request as resp:
                if resp.status in (401, 403):
                    if not creds:
                        raise AuthError(f"authentication required by {self.host}: run 'dockyard login {self.host}'")
                    self._refused = (f"{self.host}: the token server refused the "
                                     f"{'identity token' if creds.identity_token else 'credentials'} "
                                     f"(HTTP {resp.status}); run 'dockyard login {self.host}'")
                    raise AuthError(self._refused)
                if resp.status != 200:
                    raise AuthError(f"{self.host}: the token server answered HTTP {resp.status}")
                doc = await resp.json(content_type=None)
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as e:
            raise AuthError(f"cannot reach the token server {params['realm']}: {describe_connection_error(e)}") from None
        except ValueError:
            raise AuthError(f"{self.host}: the token server sent no JSON") from None
        token = (doc or {}).get("token") or (doc or {}).get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthError(f"{self.host}: the token server sent no token")
        self._auth[key] = f"Bearer {token}"

    async def ping(self, push: bool = False) -> None:
        """GET /v2/ with credentials: raises AuthError if the registry refuses them."""
        resp = await self.request("GET", self.url("/v2/"), [], expect=(200,))
        resp.release()

    # -- manifests ------------------------------------------------------------------------

    async def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str, Digest]:
        url = self.url(f"/v2/{repo}/manifests/{reference}")
        resp = await self.request("GET", url, [scope_for(repo)], headers={"Accept": MANIFEST_ACCEPT},
                                  expect=(200, 404))
        async with resp:
            if resp.status == 404:
                sep = "@" if reference.startswith("sha256:") else ":"
                raise RegistryError(f"manifest for {self.host}/{repo}{sep}{reference} not found")
            raw = await resp.content.read(4 * 1024 * 1024 + 1)
        if len(raw) > 4 * 1024 * 1024:
            raise RegistryError(f"manifest for {repo}:{reference} is larger than 4 MiB")
        digest = Digest.of(raw)
        if reference.startswith("sha256:") and str(digest) != reference:
            raise DigestMismatch(f"manifest digest mismatch: asked for {reference}, got {digest}")
        header = resp.headers.get("Docker-Content-Digest")
        if header and not reference.startswith("sha") and header != str(digest):
            with contextlib.suppress(InvalidDigest):
                if Digest.parse(header).algorithm == "sha256":
                    raise DigestMismatch(f"manifest digest mismatch: registry says {header}, content is {digest}")
        return raw, resp.headers.get("Content-Type", ""), digest

    async def put_manifest(self, repo: str, reference: str, raw: bytes, media_type: str) -> None:
        resp = await self.request("PUT", self.url(f"/v2/{repo}/manifests/{reference}"), [scope_for(repo, True)],
                                  data=raw, headers={"Content-Type": media_type}, expect=(201, 200))
        resp.release()

    # -- blobs down -----------------------------------------------------------------------

    async def fetch_blob(self, repo: str, digest: Digest, size: int, store: ContentStore,
                         progress: Progress | None = None) -> Path:
        """Download into the store (resuming a partial file), verify size and digest, commit."""
        # One downloader per blob across processes: a second pull waits, then finds it stored.
        store.locks.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(store.locks / f"blob-{digest.hex}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            await asyncio.to_thread(fcntl.flock, lock_fd, fcntl.LOCK_EX)
            if store.has_blob(digest):  # another pull finished it while we waited
                if progress:
                    progress(size)
                return store.blob_path(digest)
            part = store.ingest_path(digest)
            last_error: Exception | None = None
            hasher: Hasher | None = None
            for attempt in range(DOWNLOAD_RETRIES):
                try:
                    hasher = await self._download(repo, digest, size, part, progress)
                    last_error = None
                    break
                except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, asyncio.TimeoutError,
                        ConnectionResetError, RegistryError) as e:
                    if isinstance(e, (AuthError, DigestMismatch)):
                        raise
                    last_error = e
                    await asyncio.sleep(min(0.2 * 2 ** attempt, 3))
            if last_error is not None:
                raise RegistryError(f"download of {digest} from {self.host} failed after {DOWNLOAD_RETRIES} "
                                    f"attempts: {last_error}")
            hashed = (hasher.digest(), hasher.size) if hasher is not None else None
            return await asyncio.to_thread(store.commit_file, digest, part, size, hashed)
        finally:
            os.close(lock_fd)

    async def _download(self, repo: str, digest: Digest, size: int, part: Path,
                        progress: Progress | None) -> Hasher | None:
        """Fill ``part`` up to ``size`` bytes; returns a hasher over all of them (the bytes are
        hashed as they arrive, so the commit needs no second pass), or None if it did not see
        them all."""
        offset = part.stat().st_size if part.exists() else 0
        if offset > size:
            part.unlink()
            offset = 0
        if offset == size and size > 0:
            return None
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = await self.request("GET", self.url(f"/v2/{repo}/blobs/{digest}"), [scope_for(repo)],
                                  headers=headers, expect=(200, 206, 404, 416))
        async with resp:
            if resp.status == 404:
                raise ImageError(f"blob {digest} not found in {self.host}/{repo}")
            if resp.status == 416:  # our partial file is useless: start over next attempt
                part.unlink(missing_ok=True)
                raise RegistryError("range not satisfiable")
            mode = "ab" if resp.status == 206 else "wb"
            done = offset if resp.status == 206 else 0
            # A resumed file's first bytes came from an earlier attempt: hash them from disk.
            hasher = await asyncio.to_thread(_hash_prefix, part, digest.algorithm) if done else Hasher(digest.algorithm)
            # Each chunk is written and hashed in a worker thread while the event loop receives
            # the next one (and serves the other downloads): hashing in the loop thread would
            # stall every connection for ~1 ms per MiB.
            loop = asyncio.get_running_loop()
            pending: asyncio.Future | None = None
            with open(part, mode) as f:
                try:
                    async for chunk in resp.content.iter_chunked(1 << 20):
                        done += len(chunk)
                        if done > size:
                            break
                        if pending is not None:
                            await pending
                        pending = loop.run_in_executor(None, _write_and_hash, f, hasher, chunk)
                        if progress:
                            progress(done)
                finally:
                    if pending is not None:
                        await asyncio.wait([pending])  # never close the file under a write
                if pending is not None:
                    pending.result()
            if done > size:
                part.unlink(missing_ok=True)
                raise DigestMismatch(f"blob {digest} is larger than its descriptor's {size} bytes")
            if done < size:
                raise RegistryError(f"connection closed after {done} of {size} bytes")
        return hasher

    # -- blobs up -------------------------------------------------------------------------

    async def blob_exists(self, repo: str, digest: Digest) -> bool:
        resp = await self.request("HEAD", self.url(f"/v2/{repo}/blobs/{digest}"), [scope_for(repo, True)],
                                  expect=(200, 404))
        resp.release()
        return resp.status == 200

    async def mount_blob(self, repo: str, digest: Digest, source_repo: str) -> URL | None:
        """Cross-repository mount. True -> mounted (None); else the upload URL the registry opened."""
        url = self.url(f"/v2/{repo}/blobs/uploads/").with_query({"mount": str(digest), "from": source_repo})
        resp = await self.request("POST", url, [scope_for(repo, True), scope_for(source_repo)], expect=(201, 202))
        resp.release()
        return None if resp.status == 201 else self._location(resp)

    def _location(self, resp: aiohttp.ClientResponse) -> URL:
        loc = resp.headers.get("Location")
        if not loc:
            raise RegistryError(f"{self.host} opened an upload without a Location")
        url = URL(loc)
        return url if url.is_absolute() else self.base.join(url)

    async def upload_blob(self, repo: str, digest: Digest, path: Path, location: URL | None = None,
                          progress: Progress | None = None) -> None:
        scopes = [scope_for(repo, True)]
        size = path.stat().st_size
        if location is None:
            resp = await self.request("POST", self.url(f"/v2/{repo}/blobs/uploads/"), scopes, expect=(202,))
            resp.release()
            location = self._location(resp)
        with open(path, "rb") as f:
            if size <= CHUNK_SIZE:
                data = f.read()
                final = location.update_query({"digest": str(digest)})
                resp = await self.request("PUT", final, scopes, data=data, expect=(201,),
                                          headers={"Content-Type": "application/octet-stream"})
                resp.release()
                if progress:
                    progress(size)
                return
            offset = 0
            while offset < size:
                chunk = f.read(CHUNK_SIZE)
                end = offset + len(chunk) - 1
                resp = await self.request("PATCH", location, scopes, data=chunk, expect=(202,), headers={
                    "Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{end}"})
                resp.release()
                location = self._location(resp)
                offset = end + 1
                if progress:
                    progress(offset)
        resp = await self.request("PUT", location.update_query({"digest": str(digest)}), scopes, expect=(201,),
                                  headers={"Content-Length": "0"})
        resp.release()


WRITEBACK_STEP = 8 << 20  # bytes of a download between two writeback kicks (_write_and_hash)


def _write_and_hash(f, hasher: Hasher, chunk: bytes) -> None:
    f.write(chunk)
    hasher.update(chunk)
    # The commit fsyncs the whole blob after its last byte: 0.07-0.11 s for 210 MB, all of it
    # on the pull's critical path. Start writing each 8 MiB back as soon as it is written:
    # POSIX_FADV_DONTNEED starts writeback of the range's dirty pages without waiting for it
    # (and drops the pages already clean, the 8 MiB before), so the fsync finds most of the
    # blob on disk. Durability still rests on that fsync alone.
    written = hasher.size
    if written // WRITEBACK_STEP != (written - len(chunk)) // WRITEBACK_STEP:
        f.flush()
        start = (written // WRITEBACK_STEP - 1) * WRITEBACK_STEP
        os.posix_fadvise(f.fileno(), max(start - WRITEBACK_STEP, 0), 2 * WRITEBACK_STEP, os.POSIX_FADV_DONTNEED)


def _hash_prefix(path: Path, algorithm: str) -> Hasher:
    h = Hasher(algorithm)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h


async def _error_detail(resp: aiohttp.ClientResponse) -> str:
    try:
        doc = await resp.json(content_type=None)
        errors = doc.get("errors") or []
        return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors) or ""
    except Exception:  # noqa: BLE001 - any body at all: the status says enough
        return ""
    finally:
        resp.release()

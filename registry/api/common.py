"""Small helpers every resource module uses: validated path parts and common headers."""
from __future__ import annotations

from typing import Callable
from urllib.parse import quote

from aiohttp import web

from oci.digest import Digest, InvalidDigest
from oci.reference import InvalidReference, validate_name

from .. import state
from ..config import RegistryConfig
from ..index import Index
from ..storage.driver import StorageDriver
from ..storage.manifest_cache import ManifestCache
from ..storage.uploads import UploadSessions
from .errors import DigestInvalid, NameInvalid, PaginationNumberInvalid

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
MAX_PAGE = 10_000
READ_CHUNK = 1 << 20


def repo_name(request: web.Request) -> str:
    name = request.match_info["name"]
    try:
        return validate_name(name)
    except InvalidReference:
        raise NameInvalid(detail={"name": name[:300]}, message=f"invalid repository name {name[:300]!r}") from None


def parse_digest(text: str | None) -> Digest:
    try:
        return Digest.parse(text or "")
    except InvalidDigest as e:
        raise DigestInvalid(detail={"digest": (text or "")[:300]}, message=str(e)) from None


def pagination(request: web.Request) -> tuple[int | None, str | None]:
    """(n, last) from the query; n None means "everything"."""
    n_text = request.query.get("n")
    n: int | None = None
    if n_text is not None and n_text != "":
        if not n_text.isdigit():
            raise PaginationNumberInvalid(detail={"n": n_text[:50]})
        n = min(int(n_text), MAX_PAGE)
    last = request.query.get("last") or None
    if last is not None and (len(last) > 512 or "\x00" in last):
        raise PaginationNumberInvalid(detail={"last": last[:50]}, message="invalid 'last' parameter")
    return n, last


def next_link(path: str, n: int, last: str) -> str:
    return f'<{path}?n={n}&last={quote(last, safe="")}>; rel="next"'


def blob_location(name: str, digest: Digest | str) -> str:
    return f"/v2/{name}/blobs/{digest}"


def manifest_location(name: str, digest: Digest | str) -> str:
    return f"/v2/{name}/manifests/{digest}"


def upload_location(name: str, upload_id: str) -> str:
    return f"/v2/{name}/blobs/uploads/{upload_id}"


def client_key(request: web.Request) -> str:
    """Who is asking, for per-client caps: the signed-in user's name, else the peer address."""
    who = request.get(state.IDENTITY)
    name = getattr(who, "name", None)
    if name and not getattr(who, "anonymous", False):
        return f"user:{name}"[:255]
    return f"addr:{request.remote or 'unknown'}"[:255]


# Typed accessors of the app's shared state (the web.AppKeys of registry.state carry the types).
def config(request: web.Request) -> RegistryConfig:
    return request.app[state.CONFIG]


def index(request: web.Request) -> Index:
    return request.app[state.INDEX]


def storage(request: web.Request) -> StorageDriver:
    return request.app[state.STORAGE]


def uploads(request: web.Request) -> UploadSessions:
    return request.app[state.UPLOADS]


def manifest_cache(request: web.Request) -> ManifestCache:
    return request.app[state.MANIFEST_CACHE]


def may_pull(request: web.Request) -> "Callable[[str], bool] | None":
    """Which repositories this caller may pull (registry.auth's visibility function), or None
    when every one: auth off, or an admin."""
    visibility = request.app.get(state.VISIBILITY)
    return visibility(request) if visibility is not None else None

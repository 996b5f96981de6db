"""The one place where a request for a cached name is diverted from the ordinary API.

It runs after routing and after the auth middleware (Dockyard's own access rules decide first,
on the name the client asked for). For a cached name it makes what the request reads present
locally, then lets the ordinary handler serve it (Accept negotiation, ranges, sendfile), except
for a blob still arriving, which is streamed by the tee. Pushes to a prefix are refused.
"""
from __future__ import annotations

import contextlib
from typing import Awaitable, Callable

from aiohttp import web

from oci import mediatypes as mt
from oci.digest import is_digest

from ..api.common import parse_digest
from ..api.errors import BlobUnknown, ManifestUnknown, Unsupported
from ..api.routes import ACTIONS
from .blobs import serve_blob, upstream_has_blob
from .manifests import ensure_manifest
from .quota import make_room
from .routing import Target
from .tags import list_tags

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
READS = {"v2.manifest.get", "v2.blob.get", "v2.tags.list", "v2.referrers.list"}


def _accepts_index(request: web.Request) -> bool:
    accepted = {p.split(";")[0].strip().lower() for h in request.headers.getall("Accept", []) for p in h.split(",")}
    accepted.discard("")
    return not accepted or bool(accepted & mt.INDEXES) or "*/*" in accepted or "application/*" in accepted


def make_middleware(service: Callable[[], "object"]):
    """``service()`` returns the ProxyService (created when the app starts)."""

    @web.middleware
    async def proxy_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        svc = service()
        route = request.match_info.route.name
        name = request.match_info.get("name")
        if not name or route not in ACTIONS:
            return await handler(request)
        target = await svc.target(name, reading=route in READS)
        if target is None:
            return await handler(request)
        if route not in READS:
            if ACTIONS[route] == "push":
                raise Unsupported(detail={"name": name, "upstream": target.upstream.name},
                                  message=f"{name} is a read-only cache of upstream {target.upstream.name}: "
                                          f"push to {target.upstream.url} instead")
            # deletes evict from the cache (same rules as any repository)
        request.match_info["name"] = target.local  # the mirror's alias onto the cached copy
        return await _read(svc, target, route, request, handler)

    return proxy_middleware


async def _read(svc, target: Target, route: str, request: web.Request, handler: Handler) -> web.StreamResponse:
    if route == "v2.manifest.get":
        reference = request.match_info["reference"]
        if is_digest(reference):
            # A digest never changes: what is cached is served with no extra lookup at all.
            with contextlib.suppress(ManifestUnknown):
                return await _pulled(svc, target, await handler(request))
        warning = await ensure_manifest(svc, target, reference, _accepts_index(request))
        try:
            resp = await handler(request)
        except ManifestUnknown:
            # Deleted or evicted here since this process last confirmed the tag: fetch again.
            svc.forget_checked(target.local, reference)
            warning = await ensure_manifest(svc, target, reference, _accepts_index(request))
            resp = await handler(request)
        if warning:
            resp.headers["Warning"] = warning
        return await _pulled(svc, target, resp)
    if route == "v2.blob.get":
        with contextlib.suppress(BlobUnknown):
            return await handler(request)  # cached: the ordinary path, nothing added
        digest = parse_digest(request.match_info["digest"])
        if (target.local, str(digest)) in svc.fetches:  # arriving (or being committed): join it
            return await serve_blob(svc, target, request, digest, handler)
        size = await svc.cache.stored_size(str(digest))
        # Stored already (another cached repository brought it), and the upstream confirms this
        # repository has it: a link is enough, no bytes move (they count toward the quota).
        if size is not None:
            await make_room(svc, target.local, str(digest), size)
        if (size is None or not await upstream_has_blob(target, digest)
                or not await svc.cache.mount_blob(target.local, target.upstream.name, target.remote, str(digest), size)):
            return await serve_blob(svc, target, request, digest, handler)
        return await handler(request)
    if route == "v2.tags.list":
        return await list_tags(target, request, handler)
    return await handler(request)


async def _pulled(svc, target: Target, resp: web.StreamResponse) -> web.StreamResponse:
    await svc.cache.pulled(target.local)
    return resp

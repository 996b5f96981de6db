"""The catalog's one adapter onto the registry's own operations and rights.

Every change the catalog makes goes through the same index calls as the /v2 API handlers
(registry/api/manifests.py: ``delete_tag``, ``delete_manifest``, ``put_manifest``), so garbage
collection (it marks from the index) and anything that watches those calls see a catalog
action exactly as they see a client's. Rights are registry.auth's ``can`` (pull, push, delete),
and deletes also need ``delete_enabled``, as on /v2. Each action is logged on
``registry.web.actions`` with the user who did it, and noted on the request
(``request["dockyard.action"]``) for the access log.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web

from .. import auth, state
from ..index import ManifestRecord

log = logging.getLogger("registry.web.actions")
ACTION_KEY = "dockyard.action"


@dataclass(frozen=True)
class Rights:
    push: bool = False  # copy a tag
    delete: bool = False  # delete a tag or a manifest


def user_name(request: web.Request) -> str:
    current = getattr(auth, "current_identity", None)
    who = current(request) if current is not None else None
    return getattr(who, "name", None) or "anonymous"


def rights(request: web.Request, name: str) -> Rights:
    from . import ACTIONS_ENABLED

    if not request.app.get(ACTIONS_ENABLED, True):
        return Rights()
    can = getattr(auth, "can", None)

    def may(action: str) -> bool:
        return True if can is None else bool(can(request, name, action))

    deletes = bool(getattr(request.app[state.CONFIG], "delete_enabled", True))
    return Rights(push=may("push"), delete=deletes and may("delete"))


def _note_for_access_log(user: str, action: str) -> None:
    """The access log's per-request record (registry.ops, when present) gets the action too."""
    try:
        from ..ops.context import current_request
    except ImportError:
        return
    info = current_request()
    if isinstance(info, dict):
        info.setdefault("user", user)
        info["action"] = action


def _done(request: web.Request, action: str, name: str, **what: str) -> None:
    user = user_name(request)
    detail = " ".join(f"{k}={v}" for k, v in what.items())
    request[ACTION_KEY] = f"{action} {name} {detail}".strip()
    _note_for_access_log(user, request[ACTION_KEY])
    log.info("catalog action %s by %s: repository=%s %s", action, user, name, detail)
    from . import SERVICE

    service = request.app.get(SERVICE)
    if service is not None:
        service.ranking.mark_dirty()


async def delete_tag(request: web.Request, name: str, tag: str) -> bool:
    deleted = await request.app[state.INDEX].delete_tag(name, tag)
    if deleted:
        _done(request, "delete-tag", name, tag=tag)
    return deleted


async def delete_manifest(request: web.Request, name: str, digest: str) -> bool:
    deleted = await request.app[state.INDEX].delete_manifest(name, digest)
    if deleted:
        _done(request, "delete-manifest", name, digest=digest)
    return deleted


async def resolve(request: web.Request, name: str, tag: str) -> tuple[str, str, int] | None:
    return await request.app[state.INDEX].resolve_tag(name, tag)


async def copy_tag(request: web.Request, name: str, tag: str, new_tag: str) -> str | None:
    """Point ``new_tag`` at the manifest ``tag`` points at: the index call a PUT of the same
    manifest bytes under the new tag makes (its references are recorded already)."""
    found = await resolve(request, name, tag)
    if found is None:
        return None
    digest, media_type, size = found
    await request.app[state.INDEX].put_manifest(name, ManifestRecord(digest=digest, media_type=media_type,
                                                                      size=size, tags=(new_tag,)))
    _done(request, "copy-tag", name, tag=tag, new_tag=new_tag, digest=digest)
    return digest

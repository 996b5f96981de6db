"""Typed keys for what the application shares between handlers (``app[CONFIG]`` etc.).

Other packages (auth, the catalog browser) read these keys; they never reach into handlers.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from aiohttp import web

from .config import RegistryConfig

if TYPE_CHECKING:
    from .index import Index
    from .storage.driver import StorageDriver
    from .storage.manifest_cache import ManifestCache
    from .storage.uploads import UploadSessions

CONFIG = web.AppKey("config", RegistryConfig)
INDEX: web.AppKey["Index"] = web.AppKey("index")
STORAGE: web.AppKey["StorageDriver"] = web.AppKey("storage")
UPLOADS: web.AppKey["UploadSessions"] = web.AppKey("uploads")
MANIFEST_CACHE: web.AppKey["ManifestCache"] = web.AppKey("manifest_cache")

# "Which repositories may this caller pull?": a predicate, or None when every one. Set by
# registry.auth (its ``visible_filter``); absent when auth is off. The API's catalog and mount
# ask it explicitly, the catalog pages too: one visibility function, no answers hidden elsewhere.
Visibility = Callable[[web.Request], "Callable[[str], bool] | None"]
VISIBILITY: web.AppKey[Visibility] = web.AppKey("visibility")

# Request keys (plain strings: aiohttp has no typed request keys).
IDENTITY = "dockyard.identity"  # the caller's registry.auth Identity, set by the auth middleware
GRANTS = "dockyard.grants"  # token mode: the verified token's claims, for repository access

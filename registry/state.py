"""Typed keys for what the application shares between handlers (``app[CONFIG]`` etc.).

Other packages (auth, the catalog browser) read these keys; they never reach into handlers.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

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

# Request keys (plain strings: aiohttp has no typed request keys).
IDENTITY = "dockyard.identity"  # the caller's registry.auth Identity, set by the auth middleware

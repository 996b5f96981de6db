"""The HTML catalog browser (owned by the catalog work).

``setup_catalog(app, config)`` is called by registry.app.create_app after the API routes exist.
"""
from __future__ import annotations

from aiohttp import web

from ..config import RegistryConfig


def setup_catalog(app: web.Application, config: RegistryConfig) -> None:
    """No catalog pages yet."""
    return None

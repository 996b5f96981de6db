"""Authentication and authorization for the registry (owned by the auth work).

``setup_auth(app, config)`` is called by registry.app.create_app after the API routes exist.
"""
from __future__ import annotations

from aiohttp import web

from ..config import RegistryConfig


def setup_auth(app: web.Application, config: RegistryConfig) -> None:
    """No authentication yet: every request is allowed."""
    return None

"""Fixtures for the catalog tests: the registry tests' config and client, on both index backends
(``index_url`` is parametrised sqlite/postgres in tests/registry/conftest.py)."""
from __future__ import annotations

from tests.registry.conftest import client, config, index_url  # noqa: F401 - fixtures re-exported

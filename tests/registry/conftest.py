"""Fixtures for the registry tests: a config on a temporary data dir, per index backend.

``index_url`` is parametrised: "sqlite" (a file in tmp_path) and "postgres" (a fresh empty
database from the ``postgres_url`` fixture in tests/servers.py). ``client`` is an aiohttp test
client on ``create_app(config)``.
"""
from __future__ import annotations

import pytest

from registry.app import create_app
from registry.config import RegistryConfig
from tests.helpers import need

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _postgres_url(request: pytest.FixtureRequest) -> str:
    try:
        return request.getfixturevalue("postgres_url")
    except pytest.FixtureLookupError:
        need(False, "the postgres_url fixture (tests/servers.py) is not available")
        raise


@pytest.fixture(params=BACKENDS)
def index_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "postgres":
        return _postgres_url(request)
    return f"sqlite+aiosqlite:///{tmp_path / 'index.db'}"


@pytest.fixture
def config(tmp_path, index_url) -> RegistryConfig:
    return RegistryConfig(data_dir=str(tmp_path / "data"), database_url=index_url).finish()


@pytest.fixture
async def client(aiohttp_client, config):
    return await aiohttp_client(create_app(config))

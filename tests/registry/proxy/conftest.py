"""In-process set-up for the cache's unit tests: an upstream Dockyard app, a faulty proxy in
front of it, and the registry under test configured with that proxy as upstream ``up``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from registry.app import create_app
from registry.config import RegistryConfig
from tests.registry.proxy.faulty import FaultyProxy


@dataclass
class Setup:
    upstream: Any  # test client on the upstream registry (push test content here)
    faulty: FaultyProxy
    client: Any  # test client on the registry with the cache
    app: Any


def cache_config(tmp_path, url: str, auth: dict | None = None, **upstream: Any) -> RegistryConfig:
    entry = {"name": "up", "url": url, "tag_ttl": "1h", "timeout": "10s", **upstream}
    return RegistryConfig(data_dir=str(tmp_path / "cache"), database_url=f"sqlite+aiosqlite:///{tmp_path / 'cache.db'}",
                          proxy={"upstreams": [entry], "mirror": "up"}, auth=auth or {}).finish()


@pytest.fixture
def make_setup(aiohttp_client, aiohttp_server, tmp_path):
    async def make(auth: dict | None = None, **upstream: Any) -> Setup:
        up_cfg = RegistryConfig(data_dir=str(tmp_path / "up"), database_url=f"sqlite+aiosqlite:///{tmp_path / 'up.db'}").finish()
        up_server = await aiohttp_server(create_app(up_cfg))
        up_client = await aiohttp_client(up_server)
        faulty = FaultyProxy(str(up_server.make_url("")))
        faulty_server = await aiohttp_server(faulty.app())
        app = create_app(cache_config(tmp_path, str(faulty_server.make_url("")).rstrip("/"), auth, **upstream))
        client = await aiohttp_client(app)
        return Setup(up_client, faulty, client, app)

    return make


@pytest.fixture
async def setup(make_setup) -> Setup:
    return await make_setup()

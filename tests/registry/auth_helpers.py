"""Shared set-up for the auth tests: an app with auth on, users, tokens, an authed client."""
from __future__ import annotations

import base64
from typing import Any

from registry.app import create_app
from registry.auth import AUTH
from registry.auth.passwords import hash_password, new_robot_secret, robot_secret_digest
from registry.config import RegistryConfig

RULES = [
    {"pattern": "team-a/*", "groups": ["team-a"], "actions": ["pull", "push", "delete"]},
    {"pattern": "team-a/*", "users": ["reader"], "actions": ["pull"]},
    {"pattern": "{user}/*", "users": ["*"], "actions": ["pull", "push"]},
]


def auth_config(tmp_path, mode: str = "token", **auth: Any) -> RegistryConfig:
    section = {"mode": mode, "rules": RULES, "anonymous_pull": ["public/*"], **auth}
    return RegistryConfig(data_dir=str(tmp_path / "data"), database_url=f"sqlite+aiosqlite:///{tmp_path / 'index.db'}",
                          auth=section).finish()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Authed:
    """Wraps a test client so every request carries the given headers (oci_client helpers use
    client.get/put/post/patch/head/delete)."""

    def __init__(self, client, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers

    def __getattr__(self, method: str):
        fn = getattr(self.client, method)

        def call(*args, headers: dict[str, str] | None = None, **kw):
            return fn(*args, headers={**self.headers, **(headers or {})}, **kw)
        return call


async def start(aiohttp_client, config: RegistryConfig):
    app = create_app(config)
    client = await aiohttp_client(app)
    svc = app[AUTH]
    q = svc.queries
    await q.add_user("root", hash_password("rootpw", cost=4), is_admin=True)
    await q.add_user("alice", hash_password("alicepw", cost=4), groups=["team-a"])
    await q.add_user("reader", hash_password("readerpw", cost=4))
    await q.add_user("bob", hash_password("bobpw", cost=4))
    return app, client


async def add_robot(app, name: str, scopes: list[dict[str, Any]], expires_at: float | None = None) -> str:
    secret = new_robot_secret()
    assert await app[AUTH].queries.add_robot(name, robot_secret_digest(secret), scopes, expires_at)
    return secret


async def token(client, user: str | None, password: str | None, *scopes: str, **params: str) -> str:
    headers = basic(user, password) if user else {}
    r = await client.get("/token", params=[("service", "dockyard"), *(("scope", s) for s in scopes),
                                           *params.items()], headers=headers)
    assert r.status == 200, await r.text()
    return (await r.json())["token"]

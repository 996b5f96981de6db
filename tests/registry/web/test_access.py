"""With auth on, the catalog shows each caller only what they may pull (registry.auth rules),
and the sign-in page's session cookie changes what the pages list."""
from __future__ import annotations

import re

import pytest

from tests.helpers import need
from tests.registry.oci_client import push_image

from registry import auth


def basic(user: str, password: str) -> dict[str, str]:
    from tests.registry.auth_helpers import basic as header

    return header(user, password)


@pytest.fixture
async def seeded(aiohttp_client, tmp_path):
    need(hasattr(auth, "visible_filter"), "registry.auth.visible_filter (the auth work) is not there yet")
    from tests.registry.auth_helpers import Authed, auth_config, start

    app, client = await start(aiohttp_client, auth_config(tmp_path, mode="basic"))
    root = Authed(client, basic("root", "rootpw"))
    for name in ("public/base", "team-a/api", "team-a/web", "bob/tools", "secret/vault"):
        await push_image(root, name, "v1")
    return client


async def names(client, headers=None, path="/api/v1/repositories") -> list[str]:
    r = await client.get(path, headers=headers or {})
    assert r.status == 200
    return [x["name"] for x in (await r.json())["repositories"]]


async def test_listing_search_and_stats_show_only_pullable_repositories(seeded):
    client = seeded
    assert await names(client) == ["public/base"]
    assert await names(client, basic("alice", "alicepw")) == ["public/base", "team-a/api", "team-a/web"]
    assert await names(client, basic("bob", "bobpw")) == ["bob/tools", "public/base"]
    assert len(await names(client, basic("root", "rootpw"))) == 5
    by_size = await names(client, basic("alice", "alicepw"), "/api/v1/repositories?sort=size&per_page=2")
    assert len(by_size) == 2 and set(by_size) < {"public/base", "team-a/api", "team-a/web"}
    r = await client.get("/v1/search?q=a")
    assert [x["name"] for x in (await r.json())["results"]] == ["public/base"]
    stats = await (await client.get("/api/v1/stats", headers=basic("alice", "alicepw"))).json()
    assert stats["repositories"] == 3 and stats["tags"] == 3
    html = await (await client.get("/ui/")).text()
    assert "secret/vault" not in html and "team-a" not in html and "public/base" in html


async def test_hidden_repositories_are_not_found(seeded):
    client = seeded
    for path in ("/ui/r/secret/vault", "/api/v1/repositories/secret/vault/tags", "/api/v1/repositories/team-a/api"):
        assert (await client.get(path)).status == 404, path
    assert (await client.get("/api/v1/repositories/team-a/api", headers=basic("alice", "alicepw"))).status == 200


async def test_sign_in_page_session_shows_the_users_repositories(seeded):
    client = seeded
    home = await (await client.get("/ui/")).text()
    assert re.search(r'href="/auth/login\?next=%2Fui%2F"', home)
    form = await (await client.get("/auth/login?next=/ui/")).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    r = await client.post("/auth/login", data={"username": "alice", "password": "alicepw", "next": "/ui/",
                                               "csrf_token": csrf}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/ui/"
    html = await (await client.get("/ui/")).text()  # the client keeps the session cookie
    assert "team-a/api" in html and "secret/vault" not in html
    assert '<span class="user" title="Signed in">alice</span>' in html

"""The wiring other packages rely on: middleware slot for auth, route names, app keys."""
from __future__ import annotations

from aiohttp import web

from registry import state
from registry.api.errors import Unauthorized
from registry.api.routes import ACTIONS, ROUTES
from registry.app import create_app


def test_every_route_has_an_action():
    assert {name for *_, name in ROUTES} == set(ACTIONS)


async def test_an_appended_middleware_runs_inside_the_error_envelope(aiohttp_client, config):
    seen = []

    @web.middleware
    async def fake_auth(request, handler):
        route = request.match_info.route
        seen.append((route.name, request.match_info.get("name"), ACTIONS.get(route.name or "")))
        if request.headers.get("Authorization") != "Bearer ok":
            raise Unauthorized(headers={"WWW-Authenticate": 'Bearer realm="http://x/token",service="dockyard"'})
        return await handler(request)

    app = create_app(config)
    app.middlewares.append(fake_auth)
    client = await aiohttp_client(app)
    r = await client.get("/v2/a/b/tags/list")
    assert r.status == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer realm=")
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert (await r.json())["errors"][0]["code"] == "UNAUTHORIZED"
    r = await client.head("/v2/a/b/manifests/latest")
    assert r.status == 401 and await r.read() == b""
    r = await client.get("/v2/", headers={"Authorization": "Bearer ok"})
    assert r.status == 200
    assert seen[0] == ("v2.tags.list", "a/b", "pull")
    assert seen[1] == ("v2.manifest.get", "a/b", "pull")
    assert app[state.CONFIG] is config

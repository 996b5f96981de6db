"""Actions from the catalog (delete a tag, delete a manifest, copy a tag): a confirmation step,
CSRF on every form, the registry's own index operations, the user in the log, and no buttons
for those without the rights."""
from __future__ import annotations

import logging
import re

import pytest

from registry.app import create_app
from registry.config import RegistryConfig
from tests.registry.oci_client import push_image
from tests.registry.web.test_views import get_html


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


async def tags_of(client, name: str, headers=None) -> list[str]:
    r = await client.get(f"/v2/{name}/tags/list", headers=headers or {})
    return (await r.json())["tags"] if r.status == 200 else []


async def test_delete_tag_confirms_then_deletes_and_logs(client, caplog):
    await push_image(client, "act/app", "v1")
    await push_image(client, "act/app", "v2")
    html = await get_html(client, "/ui/r/act/app")
    assert 'href="/ui/r/act/app/-/tags/v1/delete"' in html and 'href="/ui/r/act/app/-/tags/v1/copy"' in html
    confirm = await get_html(client, "/ui/r/act/app/-/tags/v1/delete")
    assert "Delete tag <code>v1</code>?" in confirm
    assert await tags_of(client, "act/app") == ["v1", "v2"]  # asking changed nothing
    with caplog.at_level(logging.INFO, logger="registry.web.actions"):
        r = await client.post("/ui/r/act/app/-/tags/v1/delete", data={"csrf_token": csrf_of(confirm)},
                              allow_redirects=False)
    assert r.status == 303 and r.headers["Location"].startswith("/ui/r/act/app?done=deleted-tag")
    assert await tags_of(client, "act/app") == ["v2"]
    assert any("delete-tag by anonymous" in m and "tag=v1" in m for m in caplog.messages)
    after = await get_html(client, r.headers["Location"])
    assert "Tag v1 deleted." in after


async def test_forms_without_the_token_or_from_another_site_are_refused(client):
    await push_image(client, "act/guard", "v1")
    page = await get_html(client, "/ui/r/act/guard/-/tags/v1/delete")
    token = csrf_of(page)
    for data, headers in (({}, {}), ({"csrf_token": "x" * 43}, {}),
                          ({"csrf_token": token}, {"Origin": "http://evil.example"})):
        r = await client.post("/ui/r/act/guard/-/tags/v1/delete", data=data, headers=headers, allow_redirects=False)
        assert r.status == 403, (data, headers)
        assert "Nothing was changed" in await r.text()
    # no cookie at all (another site's form in a fresh browser)
    client.session.cookie_jar.clear()
    r = await client.post("/ui/r/act/guard/-/tags/v1/delete", data={"csrf_token": token}, allow_redirects=False)
    assert r.status == 403
    assert await tags_of(client, "act/guard") == ["v1"]


async def test_copy_tag_and_delete_manifest(client):
    digest, _ = await push_image(client, "act/copy", "v1")
    page = await get_html(client, "/ui/r/act/copy/-/tags/v1/copy")
    token = csrf_of(page)
    r = await client.post("/ui/r/act/copy/-/tags/v1/copy", data={"csrf_token": token, "new_tag": "stable"},
                          allow_redirects=False)
    assert r.status == 303
    assert await tags_of(client, "act/copy") == ["stable", "v1"]
    r = await client.get("/v2/act/copy/manifests/stable")
    assert r.headers["Docker-Content-Digest"] == digest
    # a bad name, and an existing one without "replace", are refused with the form again
    r = await client.post("/ui/r/act/copy/-/tags/v1/copy", data={"csrf_token": token, "new_tag": "-bad"})
    assert r.status == 400 and "A tag is 1 to 128" in await r.text()
    r = await client.post("/ui/r/act/copy/-/tags/v1/copy", data={"csrf_token": token, "new_tag": "stable"})
    assert r.status == 400 and "exists" in await r.text()
    image = await get_html(client, f"/ui/r/act/copy/-/manifest/{digest}")
    assert f'href="/ui/r/act/copy/-/manifest/{digest}/delete"' in image
    confirm = await get_html(client, f"/ui/r/act/copy/-/manifest/{digest}/delete")
    assert "<code>stable</code>" in confirm and "<code>v1</code>" in confirm
    r = await client.post(f"/ui/r/act/copy/-/manifest/{digest}/delete", data={"csrf_token": token},
                          allow_redirects=False)
    assert r.status == 303
    assert (await client.get(f"/v2/act/copy/manifests/{digest}")).status == 404
    assert await tags_of(client, "act/copy") == []


async def test_read_only_catalog_shows_no_buttons(aiohttp_client, tmp_path):
    config = RegistryConfig(data_dir=str(tmp_path / "data"), database_url=f"sqlite+aiosqlite:///{tmp_path / 'i.db'}",
                            catalog={"actions": False}).finish()
    client = await aiohttp_client(create_app(config))
    digest, _ = await push_image(client, "ro/app", "v1")
    for path in ("/ui/r/ro/app", f"/ui/r/ro/app/-/manifest/{digest}"):
        html = await get_html(client, path)
        assert "/delete" not in html and "/copy" not in html
    r = await client.get("/ui/r/ro/app/-/tags/v1/delete")
    assert r.status == 403 and "csrf_token" not in (await r.text()).split("<main")[1]


@pytest.fixture
async def authed(aiohttp_client, tmp_path):
    from tests.registry.auth_helpers import Authed, auth_config, basic, start

    app, client = await start(aiohttp_client, auth_config(tmp_path, mode="basic"))
    root = Authed(client, basic("root", "rootpw"))
    for name in ("public/base", "team-a/api"):
        await push_image(root, name, "v1")
    return client, root


async def sign_in(client, user: str, password: str) -> None:
    page = await (await client.get("/auth/login?next=/ui/")).text()
    r = await client.post("/auth/login", data={"username": user, "password": password, "next": "/ui/",
                                               "csrf_token": csrf_of(page)}, allow_redirects=False)
    assert r.status == 303


async def test_rights_decide_the_buttons_and_the_actions(authed, caplog):
    client, root = authed
    html = await get_html(client, "/ui/r/public/base")  # anonymous: may pull, may not change
    assert "/-/tags/v1/delete" not in html and "/-/tags/v1/copy" not in html
    r = await client.get("/ui/r/public/base/-/tags/v1/delete")
    assert r.status == 403 and "You may not delete tags" in await r.text()
    token = csrf_of(await (await client.get("/auth/login")).text())
    r = await client.post("/ui/r/public/base/-/tags/v1/delete", data={"csrf_token": token}, allow_redirects=False)
    assert r.status == 403
    assert (await client.get("/ui/r/team-a/api/-/tags/v1/delete")).status == 404  # hidden: not even "forbidden"

    await sign_in(client, "alice", "alicepw")  # team-a: pull, push, delete
    html = await get_html(client, "/ui/r/team-a/api")
    assert "/-/tags/v1/delete" in html and "/-/tags/v1/copy" in html
    assert "/-/tags/v1/delete" not in await get_html(client, "/ui/r/public/base")
    with caplog.at_level(logging.INFO, logger="registry.web.actions"):
        r = await client.post("/ui/r/team-a/api/-/tags/v1/copy", data={"csrf_token": token, "new_tag": "v1-copy"},
                              allow_redirects=False)
    assert r.status == 303
    assert any("copy-tag by alice" in m for m in caplog.messages)
    assert await tags_of(root, "team-a/api") == ["v1", "v1-copy"]


async def test_anonymous_with_nothing_public_is_offered_to_sign_in(aiohttp_client, tmp_path):
    from tests.registry.auth_helpers import Authed, auth_config, basic, start

    app, client = await start(aiohttp_client, auth_config(tmp_path, mode="basic"))
    await push_image(Authed(client, basic("root", "rootpw")), "secret/vault", "v1")
    html = await get_html(client, "/ui/")
    assert "Nothing here is public" in html and "No repositories yet" not in html
    assert re.search(r'<a class="button" href="/auth/login\?next=%2Fui%2F">Sign in</a>', html)
    r = await client.get("/auth/login?next=/ui/")
    assert "script-src 'self'" in r.headers["Content-Security-Policy"] and r.headers["Cache-Control"] == "no-store"
    login = await r.text()
    assert 'class="topbar"' in login and 'class="brand"' in login and 'name="csrf_token"' in login
    assert 'class="signin"' not in login  # no "Sign in" link on the sign-in page itself
    await sign_in(client, "bob", "bobpw")
    assert "You may not pull any repository yet" in await get_html(client, "/ui/")

"""The catalog's actions and insight pages in Debian's chromium (Playwright), against
dockyard-registry processes: descriptions and badges, layer files and the merged tree, hostile
file names, delete/copy with their confirmation pages, CSRF refusal of another site's form,
the sign-in page and the API page. Screenshots go to $DOCKYARD_ARTIFACTS."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import async_playwright

from tests.helpers import need
from tests.registry.oci_client import push_image
from tests.registry.web.layers import push_layered, tar_layer
from tests.registry.web.test_browser import ARGS, CHROMIUM, shot
from tests.registry.web.test_catalog_insight import _hostile_layer
from tests.registry.web.test_views import HOSTILE, push_described
from tests.servers import REGISTRY_BIN, DockyardRegistry

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
OCI = "org.opencontainers.image."


async def _seed(url: str) -> dict:
    out: dict = {}
    async with aiohttp.ClientSession(base_url=url) as s:
        base = tar_layer({"etc": None, "etc/os-release": b"NAME=demo\n", "etc/old.conf": b"x", "bin/busybox": b"b" * 4096,
                          "bin/sh": "->/bin/busybox"})
        upper = tar_layer({"etc/.wh.old.conf": b"", "srv/www/index.html": b"<h1>hi</h1>"}, "zstd")
        pushed = await push_layered(s, "shop/site", "1.0", [base, upper],
                                    annotations={OCI + "description": "The shop's web site " + HOSTILE,
                                                 OCI + "source": "https://example.test/shop", OCI + "licenses": "MIT"},
                                    labels={OCI + "version": "1.0.0", "com.example.note": HOSTILE})
        out["site"] = pushed
        for artifact_type in ("application/vnd.dev.cosign.artifact.sig.v1+json", "application/spdx+json"):
            await push_described(s, "shop/site", None, artifact_type=artifact_type,
                                 subject=(pushed["digest"], len(pushed["raw"])))
        out["evil"] = await push_layered(s, "shop/evil", "v1", [_hostile_layer()])
        for tag in ("v1", "v2"):
            out[f"act:{tag}"], _ = await push_image(s, "shop/act", tag)
    return out


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    need(REGISTRY_BIN.exists(), f"needs {REGISTRY_BIN} (make venv)")
    need(Path(CHROMIUM).exists(), "needs Debian's chromium (apt-get install chromium)")
    reg = DockyardRegistry(tmp_path_factory.mktemp("catalog2") / "data", None)
    reg.start()
    try:
        yield reg, asyncio.run(_seed(reg.url))
    finally:
        reg.stop()


@pytest.fixture
async def page():
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            pg = await context.new_page()
            pg.dialogs = []  # type: ignore[attr-defined]
            pg.on("dialog", lambda d: (pg.dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
            yield pg
        finally:
            await browser.close()


async def test_description_badges_files_and_tree(registry, page):
    reg, seeded = registry
    await page.goto(f"{reg.url}/ui/?q=shop")
    assert "The shop's web site " + HOSTILE in await page.inner_text("table.repos")
    await shot(page, "search-with-descriptions")
    await page.get_by_role("link", name="shop/site").click()
    head = await page.inner_text(".pagehead")
    assert "The shop's web site " + HOSTILE in head and "MIT" in head and "1.0.0" in head
    assert "docker pull 127.0.0.1" in head and "shop/site:1.0" in head
    row = page.locator("table.tags tbody tr").first
    assert "signed" in await row.inner_text() and "SBOM" in await row.inner_text()
    await shot(page, "repository-described")
    async with page.expect_navigation():
        await row.locator("a.signbadge-signature").click()
    descriptor = json.loads(await page.inner_text("body"))
    assert descriptor["subject"] == seeded["site"]["digest"] and descriptor["artifactType"].startswith("application/vnd.dev.cosign")

    await page.goto(f"{reg.url}/ui/r/shop/site/-/manifest/1.0")
    labels = await page.inner_text("main")
    assert "com.example.note" in labels and HOSTILE in labels
    await page.get_by_role("link", name="Browse files").click()
    await page.wait_for_selector("table.files")
    tree = await page.inner_text("table.files")
    assert "/etc/os-release" in tree and "/srv/www/index.html" in tree and "/etc/old.conf" not in tree
    assert "→ /bin/busybox" in tree
    await shot(page, "file-tree")
    await page.fill("input[name=path]", "busybox")
    await page.get_by_role("button", name="Find").click()
    await page.wait_for_load_state()
    assert await page.locator("table.files tbody tr").count() == 1
    await page.locator("table.files a").first.click()  # the layer it came from
    await page.wait_for_selector("table.files")
    assert "Layer 1 of 2" in await page.inner_text("h1")
    assert "4.1 KB" in await page.inner_text("table.files")
    await shot(page, "layer-files")
    assert page.dialogs == []


async def test_hostile_file_names_stay_text(registry, page):
    reg, seeded = registry
    await page.goto(f"{reg.url}/ui/r/shop/evil/-/manifest/v1/layers/{seeded['evil']['layers'][0]}/files")
    text = await page.inner_text("table.files")
    assert HOSTILE in text and "\\x1b[31mred\\x0aline" in text
    assert await page.locator("main script, main img").count() == 0 and page.dialogs == []
    await shot(page, "layer-files-hostile")


async def test_delete_and_copy_with_confirmation(registry, page):
    reg, seeded = registry
    await page.goto(f"{reg.url}/ui/r/shop/act")
    await page.locator("table.tags tr", has_text="v1").get_by_role("link", name="Copy tag").click()
    await page.fill("input[name=new_tag]", "stable")
    await shot(page, "copy-tag-confirm")
    await page.get_by_role("button", name="Create tag").click()
    assert "Tag stable created." in await page.inner_text(".notice")
    assert await page.locator("table.tags td.name > a").all_inner_texts() == ["stable", "v1", "v2"]
    await shot(page, "repository-after-copy")

    await page.locator("table.tags tr", has_text="v2").get_by_role("link", name="Delete tag").click()
    assert "Delete tag v2?" in await page.inner_text("h1")
    await shot(page, "delete-tag-confirm")
    await page.get_by_role("link", name="Cancel").click()  # cancelling changes nothing
    assert "v2" in await page.locator("table.tags td.name > a").all_inner_texts()
    await page.locator("table.tags tr", has_text="v2").get_by_role("link", name="Delete tag").click()
    await page.get_by_role("button", name="Delete tag v2").click()
    assert "Tag v2 deleted." in await page.inner_text(".notice")
    assert await page.locator("table.tags td.name > a").all_inner_texts() == ["stable", "v1"]

    await page.goto(f"{reg.url}/ui/r/shop/act/-/manifest/{seeded['act:v1']}")
    await page.get_by_role("link", name="Delete manifest").click()
    confirm = await page.inner_text("main")
    assert "stable" in confirm and "v1" in confirm
    await shot(page, "delete-manifest-confirm")
    await page.get_by_role("button", name="Delete manifest").click()
    assert "deleted, with every tag" in await page.inner_text(".notice")
    assert await page.locator("table.tags").count() == 0
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{reg.url}/v2/shop/act/manifests/{seeded['act:v1']}") as r:
            assert r.status == 404


async def test_another_sites_form_is_refused(registry, page):
    reg, _ = registry
    await page.goto(f"{reg.url}/ui/r/shop/site")  # the browser holds this site's CSRF cookie
    # a page from elsewhere that posts to the registry, token guessed
    await page.set_content(f'<form method="post" action="{reg.url}/ui/r/shop/site/-/tags/1.0/delete">'
                           '<input name="csrf_token" value="' + "A" * 43 + '"><button>go</button></form>')
    await page.click("button")
    await page.wait_for_load_state()
    assert "Refused" in await page.inner_text("h1")
    await shot(page, "csrf-refused")
    await page.goto(f"{reg.url}/ui/r/shop/site")
    assert "1.0" in await page.locator("table.tags td.name > a").all_inner_texts()


async def test_api_and_storage_pages(registry, page):
    reg, _ = registry
    await page.goto(f"{reg.url}/ui/api")
    assert "Dockyard catalog API" in await page.inner_text("h1")
    await page.get_by_role("link", name="GET /api/v1/repositories/{name}/tags", exact=False).first.click()
    assert "sort" in await page.inner_text("#get--api-v1-repositories-name-tags")
    await shot(page, "api-docs")
    await page.goto(f"{reg.url}/ui/storage")
    text = await page.inner_text("table.storage")
    assert "shop" in text
    await shot(page, "storage")


@pytest.fixture(scope="module")
def authed_registry(tmp_path_factory):
    need(REGISTRY_BIN.exists(), f"needs {REGISTRY_BIN} (make venv)")
    need(Path(CHROMIUM).exists(), "needs Debian's chromium (apt-get install chromium)")
    from registry.auth.passwords import hash_password

    root = tmp_path_factory.mktemp("catalog-auth")
    (root / "htpasswd").write_text(f"alice:{hash_password('alicepw', cost=4)}\n")
    (root / "config.yml").write_text(json.dumps({"auth": {
        "mode": "basic", "htpasswd": str(root / "htpasswd"), "anonymous_pull": ["public/*"],
        "rules": [{"pattern": "team/*", "users": ["alice"], "actions": ["pull", "push", "delete"]}]}}))
    reg = DockyardRegistry(root / "data", None, args=("--config", str(root / "config.yml")))
    reg.start()
    try:
        async def seed():
            from tests.registry.auth_helpers import basic

            async with aiohttp.ClientSession(base_url=reg.url, headers=basic("alice", "alicepw")) as s:
                await push_image(s, "team/api", "v1")
        asyncio.run(seed())
        yield reg
    finally:
        reg.stop()


async def test_nothing_public_then_sign_in_with_the_sites_header(authed_registry, page):
    reg = authed_registry
    await page.goto(f"{reg.url}/ui/")
    assert "Nothing here is public" in await page.inner_text(".empty")
    await shot(page, "anonymous-nothing-public")
    await page.locator(".empty").get_by_role("link", name="Sign in").click()
    assert await page.locator("header.topbar .brand").count() == 1
    await shot(page, "sign-in")
    await page.fill("input[name=username]", "alice")
    await page.fill("input[name=password]", "alicepw")
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_load_state()
    assert "team/api" in await page.inner_text("table.repos")
    await page.get_by_role("link", name="team/api").click()
    assert await page.locator("table.tags").get_by_role("link", name="Delete tag").count() == 1
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_load_state()
    await page.goto(f"{reg.url}/ui/")
    assert "Nothing here is public" in await page.inner_text(".empty")

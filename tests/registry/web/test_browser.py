"""The catalog in a real browser: Debian's chromium driven by Playwright, against
dockyard-registry started as a user starts it (a process on a free loopback port).

Screenshots of the main pages go to $DOCKYARD_ARTIFACTS (default /tmp/dockyard-catalog-screens)
so people (and CI artifacts) can look at them.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import async_playwright, expect

from tests import images
from tests.helpers import need, need_tool
from tests.registry.oci_client import push_image
from tests.servers import REGISTRY_BIN, DockyardRegistry
from tests.registry.web.test_views import HOSTILE, push_described

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-quic", "--no-first-run"]
SHOTS = Path(os.environ.get("DOCKYARD_ARTIFACTS", "/tmp/dockyard-catalog-screens"))
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def _seed(url: str) -> dict[str, str]:
    seeded: dict[str, str] = {}
    async with aiohttp.ClientSession(base_url=url) as s:
        for i in range(30):
            name = f"team-{i % 3}/service-{i:02d}"
            await push_image(s, name, "v1", layers=1 + i % 4)
        for tag in ("1.0", "1.1", "2.0"):
            seeded[f"web:{tag}"], _ = await push_image(s, "shop/web-frontend", tag, layers=3)
        config = {"architecture": "amd64", "os": "linux", "created": "2026-03-01T10:00:00Z",
                  "config": {"Entrypoint": ["/bin/busybox", "httpd"], "Cmd": ["-f", "-p", "8080"],
                             "Env": ["PATH=/bin"], "ExposedPorts": {"8080/tcp": {}},
                             "Labels": {"org.opencontainers.image.title": HOSTILE}},
                  "history": [{"created_by": "ADD busybox /"}, {"created_by": "COPY site /www"}]}
        digest = await push_described(s, "shop/site", "latest", config=config, layers=[b"b" * 4000, b"s" * 1500],
                                      annotations={"org.opencontainers.image.description": HOSTILE})
        seeded["site"] = digest
        async with s.get(f"/v2/shop/site/manifests/{digest}") as r:
            size = len(await r.read())
        seeded["sbom"] = await push_described(s, "shop/site", None, artifact_type="application/spdx+json",
                                              annotations={"org.example.tool": "syft"}, subject=(digest, size))
    return seeded


@pytest.fixture(scope="module")
def catalog_registry(tmp_path_factory):
    need(REGISTRY_BIN.exists(), f"needs {REGISTRY_BIN} (make venv)")
    need(Path(CHROMIUM).exists(), "needs Debian's chromium (apt-get install chromium)")
    reg = DockyardRegistry(tmp_path_factory.mktemp("catalog") / "data", None)
    reg.start()
    try:
        seeded = asyncio.run(_seed(reg.url))
        yield reg, seeded
    finally:
        reg.stop()


@pytest.fixture(params=["csp"])
async def page(request):
    """A page in a fresh context; param "no-csp" ignores the CSP header (escaping alone must hold)."""
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900},
                                                bypass_csp=request.param == "no-csp")
            pg = await context.new_page()
            pg.mode = request.param  # type: ignore[attr-defined]
            pg.dialogs = []  # type: ignore[attr-defined]
            pg.on("dialog", lambda d: (pg.dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
            pg.console_errors = []  # type: ignore[attr-defined]
            pg.on("console", lambda m: m.type == "error" and pg.console_errors.append(m.text))
            yield pg
        finally:
            await browser.close()


async def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def names(page) -> list[str]:
    return await page.locator("table.repos td.name a").all_inner_texts()


async def test_search_sort_page_and_browse_to_layers(catalog_registry, page):
    reg, seeded = catalog_registry
    await page.goto(f"{reg.url}/ui/")
    assert (await page.locator(".stat .value").first.inner_text()) == "32"
    assert len(await names(page)) == 32
    await shot(page, "home")

    # search as you type: no submit, the list narrows
    await page.locator("#search").press_sequentially("service-1", delay=20)
    await expect(page.locator("table.repos td.name a")).to_have_count(10)
    assert all("service-1" in n for n in await names(page))
    assert "q=service-1" in page.url

    # sort by tags (descending): the 3-tag repository is not in the filtered list, so clear first
    await page.locator("#search").fill("")
    await expect(page.locator("table.repos td.name a")).to_have_count(32)
    await page.get_by_role("link", name="Tags").click()
    await page.wait_for_load_state()
    assert (await names(page))[0] == "shop/web-frontend"
    await page.get_by_role("link", name="Name").click()
    assert (await names(page))[0] == "shop/site"  # name sorts ascending first
    await page.goto(f"{reg.url}/ui/?per_page=10")
    assert len(await names(page)) == 10 and "Page 1 of 4" in await page.inner_text(".pager")
    await page.get_by_role("link", name="Next →").click()
    assert "Page 2 of 4" in await page.inner_text(".pager")
    assert (await names(page))[0] == "team-0/service-24"

    # into a repository, then an image
    await page.goto(f"{reg.url}/ui/?q=web-frontend")
    await page.get_by_role("link", name="shop/web-frontend").click()
    await page.wait_for_selector("table.tags")
    rows = page.locator("table.tags tbody tr")
    assert await rows.count() == 3
    assert seeded["web:2.0"] in await page.locator(f"code[title='{seeded['web:2.0']}']").get_attribute("title")
    assert "docker pull 127.0.0.1" in await page.inner_text("table.tags")
    await page.get_by_label("dockyard").check()
    assert "dockyard pull 127.0.0.1" in await page.inner_text("table.tags")
    await shot(page, "repository")
    await page.get_by_role("link", name="2.0", exact=True).click()
    await page.wait_for_selector("table.layers")
    assert await page.locator("table.layers tbody tr").count() == 3
    assert seeded["web:2.0"] in await page.inner_text(".digestline")
    assert page.dialogs == [] and page.console_errors == []

    # a phone-sized screen: no horizontal scrolling of the page itself
    await page.set_viewport_size({"width": 390, "height": 844})
    for path, name in (("/ui/", "home-mobile"), ("/ui/r/shop/web-frontend", "repository-mobile")):
        await page.goto(f"{reg.url}{path}")
        await shot(page, name)
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390 + 1, name


@pytest.mark.parametrize("page", ["csp", "no-csp"], indirect=True)
async def test_image_page_config_referrers_and_hostile_text(catalog_registry, page):
    reg, seeded = catalog_registry
    await page.goto(f"{reg.url}/ui/r/shop/site/-/manifest/latest")
    await page.wait_for_selector("table.layers")
    text = await page.inner_text("main")
    assert '["/bin/busybox","httpd"]' in text.replace(", ", ",") and "8080/tcp" in text
    assert "ADD busybox /" in text and "COPY site /www" in text
    assert "4.0 KB" in text and "1.5 KB" in text
    # the hostile label and annotation are shown as text and never run
    assert text.count(HOSTILE) >= 2
    assert await page.locator("main script, main img").count() == 0
    assert page.dialogs == []
    # the SBOM attached through `subject` is listed
    referrers = await page.inner_text("#referrers")
    assert "application/spdx+json" in referrers and "syft" in referrers
    await shot(page, f"image-{page.mode}")
    await page.locator("#referrers a:has(code.digest)").first.click()
    assert "attached to" in await page.inner_text(".pagehead")
    await page.goto(f"{reg.url}/ui/r/shop/nothing")
    assert "Not found" in await page.inner_text("h1")
    await shot(page, "not-found")


async def test_pages_work_without_javascript(catalog_registry):
    reg, _ = catalog_registry
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            context = await browser.new_context(java_script_enabled=False)
            pg = await context.new_page()
            await pg.goto(f"{reg.url}/ui/")
            await pg.fill("#search", "site")
            await pg.get_by_role("button", name="Search").click()
            await pg.wait_for_load_state()
            assert await pg.locator("table.repos td.name a").all_inner_texts() == ["shop/site"]
            await pg.get_by_role("link", name="shop/site").click()
            assert await pg.locator("button.copy").first.is_hidden()  # copy needs JS; the text stays
            assert "docker pull" in await pg.inner_text("table.tags")
        finally:
            await browser.close()


@pytest.mark.docker
async def test_docker_pushed_image_and_docker_search(catalog_registry, page, dockerd, tmp_path):
    reg, _ = catalog_registry
    need_tool("docker")
    built = images.docker_build_busybox(dockerd, tmp_path, f"dycat{os.getpid()}")
    target = f"{reg.host}/pushed/busybox-one:v1"
    dockerd.run("tag", built.one, target)
    try:
        out = dockerd.run("push", target).stdout
        digest = re.search(r"digest: (sha256:[0-9a-f]{64})", out).group(1)
        layers = json.loads(dockerd.run("image", "inspect", target).stdout)[0]["RootFS"]["Layers"]
        await page.goto(f"{reg.url}/ui/r/pushed/busybox-one")
        assert digest in await page.locator("code.digest").first.get_attribute("title")
        await page.get_by_role("link", name="v1", exact=True).click()
        await page.wait_for_selector("table.layers")
        assert await page.locator("table.layers tbody tr").count() == len(layers) == 3
        text = await page.inner_text("main")
        assert digest in text and "linux/amd64" in text and "COPY" in text
        await shot(page, "docker-pushed-image")
        # what docker pushed, read back from its layer blobs: one layer, then the merged tree
        await page.locator("table.layers tbody tr").nth(0).get_by_role("link", name="Files").click()
        await page.wait_for_selector("table.files")
        assert "/bin/busybox" in await page.inner_text("table.files")
        await page.goto(f"{reg.url}/ui/r/pushed/busybox-one/-/manifest/v1/tree?path=.txt")
        assert await page.locator("table.files td.path").all_inner_texts() == ["/one.txt"]
        await page.goto(f"{reg.url}/ui/r/pushed/busybox-one/-/manifest/v1/tree?path=payload")
        assert "/data/payload.bin" in await page.inner_text("table.files") and "131.1 KB" in await page.inner_text("table.files")

        found = dockerd.run("search", "--format", "{{.Name}}", f"{reg.host}/busybox-one").stdout.split()
        assert found == ["pushed/busybox-one"]  # names as the registry knows them, like Docker Hub's
        assert dockerd.run("search", "--format", "{{.Name}}", f"{reg.host}/no-such-thing").stdout.strip() == ""
    finally:
        dockerd.run("rmi", "-f", target, built.one, built.two, built.base, check=False)
        shutil.rmtree(tmp_path / "rootfs", ignore_errors=True)

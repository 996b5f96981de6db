"""The catalog's traps, gone: an OpenAPI 3 document that is valid and true to the routes, a
headline pull command that names an existing tag, an honest empty page with auth on, one search
box on the home page, and a sign-in page inside the site."""
from __future__ import annotations

import re

from openapi_spec_validator import validate

from tests.registry.oci_client import push_image
from tests.registry.web.test_views import get_html, push_described
from tests.registry.web.layers import push_layered, tar_layer


async def _seed(client) -> dict[str, str]:
    digest, _ = await push_image(client, "team/app", "v1")
    layered = await push_layered(client, "team/files", "v1", [tar_layer({"etc/hosts": b"127.0.0.1 localhost\n"})])
    return {"digest": digest, "layered": layered["digest"], "layer": layered["layers"][0]}


async def test_openapi_document_is_valid_and_every_listed_route_answers(client):
    seeded = await _seed(client)
    r = await client.get("/api/v1/openapi.json")
    assert r.status == 200 and r.content_type == "application/json"
    doc = await r.json()
    validate(doc)  # raises on any deviation from the OpenAPI 3.0 schema
    assert doc["openapi"].startswith("3.") and doc["servers"][0]["url"].startswith("http://127.0.0.1")
    values = {"name": "team/app", "reference": "v1", "digest": seeded["layer"]}
    called = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            names = {**values, "name": "team/files", "reference": "v1"} if "{digest}" in path or "/tree" in path else values
            url = re.sub(r"\{(\w+)\}", lambda m: names[m.group(1)], path)
            query = {p["name"]: str(p.get("example", "1")) for p in op.get("parameters", [])
                     if p["in"] == "query" and p.get("required")}
            resp = await client.request(method.upper(), url, params=query)
            assert str(resp.status) in op["responses"], (method, url, resp.status)
            assert resp.status == 200, (url, await resp.text())
            body = await resp.json()
            schema = op["responses"]["200"]["content"]["application/json"]["schema"]
            ref = schema.get("$ref", "")
            required = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]].get("required", []) if ref else []
            assert set(required) <= set(body), (url, required, list(body))
            called += 1
    assert called >= 12
    # an unknown name answers the documented 404 envelope
    r = await client.get("/api/v1/repositories/team/nothing/tags")
    assert r.status == 404 and "error" in await r.json()
    endpoints = (await (await client.get("/api/v1/")).json())["endpoints"]
    assert "GET /v1/search?q=&n=&page=" in endpoints and "GET /api/v1/openapi.json" in endpoints


async def test_api_page_renders_the_document_readably(client):
    html = await get_html(client, "/ui/api")
    assert "/api/v1/repositories/{name}/tags" in html and "num_results" in html
    assert "``" not in html and "registry/web" not in html  # no RST or internal paths
    assert 'href="/api/v1/openapi.json"' in html and 'id="schema-TagList"' in html


async def test_headline_pull_names_latest_else_the_newest_tag(client):
    await push_image(client, "head/only-versions", "1.0")
    await push_image(client, "head/only-versions", "2.0")
    html = await get_html(client, "/ui/r/head/only-versions")
    headline = re.search(r'<div class="pullhint[^"]*"[^>]*>.*?<code class="cmd">([^<]+)</code>', html, re.S).group(1)
    assert headline.endswith("/head/only-versions:2.0")
    # every tag row has its own command
    assert "/head/only-versions:1.0</code>" in html and "/head/only-versions:2.0</code>" in html
    await push_image(client, "head/only-versions", "latest")
    await push_image(client, "head/only-versions", "3.0")
    html = await get_html(client, "/ui/r/head/only-versions")
    assert re.search(r'<div class="pullhint[^"]*"[^>]*>.*?:latest</code>', html, re.S)
    api = await (await client.get("/api/v1/repositories/head/only-versions")).json()
    assert api["headline_tag"] == "latest"


async def test_cosign_attachment_tags_are_never_the_headline(client):
    digest, raw = await push_image(client, "head/signed", "1.0")
    await push_described(client, "head/signed", "sha256-" + digest.split(":")[1] + ".sig",
                         artifact_type="application/vnd.dev.cosign.simplesigning.v1+json")
    api = await (await client.get("/api/v1/repositories/head/signed")).json()
    assert api["headline_tag"] == "1.0"


async def test_home_has_one_search_box(client):
    await push_image(client, "one/box", "v1")
    html = await get_html(client, "/ui/")
    assert html.count('type="search"') == 1
    other = await get_html(client, "/ui/r/one/box")
    assert 'class="topsearch"' in other  # other pages keep the header's search

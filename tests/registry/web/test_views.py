"""The catalog pages and JSON API against create_app(config), seeded by real pushes (/v2 API)."""
from __future__ import annotations

import json
import re

from oci import mediatypes as mt
from oci.digest import Digest
from tests.registry.oci_client import push_blob, push_image

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


async def push_described(client, name: str, tag: str | None, *, config: dict | None = None, layers: list[bytes] = (),
                         annotations: dict | None = None, subject: tuple[str, int] | None = None,
                         artifact_type: str | None = None, stored_directly: bool = False) -> str:
    """Push a manifest whose config and annotations we choose; returns its digest.
    ``stored_directly``: write the manifest into storage and the index without the API's checks,
    as data pushed before a check existed (the pages must still render it)."""
    if artifact_type:
        cfg_bytes, cfg_type = mt.EMPTY_JSON, mt.OCI_EMPTY
    else:
        cfg_bytes, cfg_type = json.dumps(config or {"architecture": "amd64", "os": "linux"}).encode(), mt.OCI_CONFIG
    await push_blob(client, name, cfg_bytes)
    for layer in layers:
        await push_blob(client, name, layer)
    doc: dict = {
        "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": cfg_type, "digest": str(Digest.of(cfg_bytes)), "size": len(cfg_bytes)},
        "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": str(Digest.of(l)), "size": len(l)} for l in layers],
    }
    if artifact_type:
        doc["artifactType"] = artifact_type
        if not layers:
            doc["layers"] = [{"mediaType": mt.OCI_EMPTY, "digest": str(Digest.of(mt.EMPTY_JSON)), "size": 2}]
    if annotations:
        doc["annotations"] = annotations
    if subject:
        doc["subject"] = {"mediaType": mt.OCI_MANIFEST, "digest": subject[0], "size": subject[1]}
    raw = json.dumps(doc).encode()
    digest = str(Digest.of(raw))
    if stored_directly:
        from registry import state
        from registry.index import ManifestRecord

        app = client.server.app
        await app[state.STORAGE].put(Digest.of(raw), raw)
        blobs = (str(Digest.of(cfg_bytes)), *(str(Digest.of(l)) for l in layers))
        await app[state.INDEX].put_manifest(name, ManifestRecord(digest, mt.OCI_MANIFEST, len(raw), blobs=blobs,
                                                                 tags=(tag,) if tag else ()))
        return digest
    r = await client.put(f"/v2/{name}/manifests/{tag or digest}", data=raw, headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 201, await r.text()
    return digest


async def get_json(client, path: str, status: int = 200):
    r = await client.get(path)
    assert r.status == status, await r.text()
    return await r.json()


async def get_html(client, path: str, status: int = 200) -> str:
    r = await client.get(path)
    assert r.status == status, (path, r.status)
    assert r.content_type == "text/html"
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    return await r.text()


def repo_names(html: str) -> list[str]:
    return re.findall(r'<td class="name"><a href="/ui/r/([^"]+)">', html)


async def test_root_redirects_to_ui(client):
    r = await client.get("/", allow_redirects=False)
    assert r.status == 302 and r.headers["Location"] == "/ui/"


async def test_home_lists_searches_sorts_and_pages(client):
    await push_image(client, "alpha/web", "v1")
    await push_image(client, "alpha/web", "v2")
    await push_image(client, "alpha/web", "v3")
    await push_image(client, "beta/db", "v1", layers=20)
    await push_image(client, "gamma/web-cache", "v1")

    html = await get_html(client, "/ui/")
    assert repo_names(html) == ["alpha/web", "beta/db", "gamma/web-cache"]
    assert re.search(r'<span class="value">3</span><span class="label">repositories', html)
    assert re.search(r'<span class="value">5</span><span class="label">tags', html)

    assert repo_names(await get_html(client, "/ui/?q=web")) == ["alpha/web", "gamma/web-cache"]
    assert repo_names(await get_html(client, "/ui/?q=alpha%2F")) == ["alpha/web"]  # prefix
    assert repo_names(await get_html(client, "/ui/?q=%25")) == []  # LIKE wildcards are literal
    assert repo_names(await get_html(client, "/ui/?sort=tags"))[0] == "alpha/web"
    assert repo_names(await get_html(client, "/ui/?sort=size"))[0] == "beta/db"
    assert repo_names(await get_html(client, "/ui/?sort=name&order=desc")) == ["gamma/web-cache", "beta/db", "alpha/web"]
    assert repo_names(await get_html(client, "/ui/?sort=pushed"))[0] == "gamma/web-cache"

    page2 = await get_html(client, "/ui/?per_page=2&page=2")
    assert repo_names(page2) == ["gamma/web-cache"] and "Page 2 of 2" in page2
    fragment = await get_html(client, "/ui/?q=beta&fragment=1")
    assert fragment.lstrip().startswith('<div id="results"') and repo_names(fragment) == ["beta/db"]


async def test_repository_page_shows_tags_with_digest_platform_size_and_pull_line(client):
    digest, raw = await push_image(client, "team/app", "1.0", layers=3)
    await push_image(client, "team/app", "2.0")
    html = await get_html(client, "/ui/r/team/app")
    assert f'title="{digest}"' in html
    assert "linux/amd64" in html
    layers = json.loads(raw)["layers"]
    size = sum(l["size"] for l in layers)
    assert f"{size} B" in html
    assert "docker pull 127.0.0.1" in html and "/team/app:1.0" in html and "dockyard pull" in html
    filtered = await get_html(client, "/ui/r/team/app?q=2.")
    assert ">2.0</a>" in filtered and ">1.0</a>" not in filtered
    await get_html(client, "/ui/r/team/nothing", status=404)
    await get_html(client, "/ui/r/Bad..Name", status=404)
    await get_html(client, "/ui/no/such/page", status=404)


async def test_image_page_shows_config_layers_history_and_raw_manifest(client):
    layers = [b"a" * 1234, b"b" * 99]
    config = {
        "architecture": "arm64", "os": "linux", "variant": "v8", "created": "2026-05-01T12:00:00Z",
        "config": {"Entrypoint": ["/bin/busybox"], "Cmd": ["httpd", "-f"], "Env": ["PATH=/bin", "MODE=prod"],
                   "WorkingDir": "/srv", "User": "1000:1000", "ExposedPorts": {"8080/tcp": {}},
                   "Volumes": {"/data": {}}, "Labels": {"org.opencontainers.image.source": "https://example.test/app"}},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [{"created_by": "ADD rootfs.tar /"}, {"created_by": "ENV MODE=prod", "empty_layer": True},
                    {"created_by": "COPY site /srv"}],
    }
    digest = await push_described(client, "team/site", "latest", config=config, layers=layers)
    html = await get_html(client, f"/ui/r/team/site/-/manifest/{digest}")
    for text in ("linux/arm64/v8", "/bin/busybox", "httpd", "MODE=prod", "/srv", "1000:1000", "8080/tcp", "/data",
                 "org.opencontainers.image.source", "ADD rootfs.tar /", "COPY site /srv", "1.2 KB", "99 B",
                 "2026-05-01T12:00:00Z", "Nothing is attached"):
        assert text in html, text
    # layers are paired with the history lines that made them (the ENV step made none)
    assert html.index("ADD rootfs.tar /") < html.index("1.2 KB") < html.index("COPY site /srv") < html.index("99 B")
    by_tag = await get_html(client, "/ui/r/team/site/-/manifest/latest")
    assert digest in by_tag
    r = await client.get(f"/ui/r/team/site/-/manifest/{digest}/raw")
    assert r.status == 200 and r.content_type == "application/json"
    assert str(Digest.of(await r.read())) == digest
    await get_html(client, "/ui/r/team/site/-/manifest/sha256:" + "0" * 64, status=404)

    api = await get_json(client, "/api/v1/repositories/team/site/manifests/latest")
    assert api["digest"] == digest and api["kind"] == "image" and api["platform"] == "linux/arm64/v8"
    assert api["config"]["entrypoint"] == ["/bin/busybox"] and api["config"]["exposed_ports"] == ["8080/tcp"]
    assert [l["size"] for l in api["layers"]] == [1234, 99]
    assert [l["created_by"] for l in api["layers"]] == ["ADD rootfs.tar /", "COPY site /srv"]


async def test_index_page_lists_platforms(client):
    children = []
    for arch in ("amd64", "arm64"):
        d = await push_described(client, "team/multi", None, config={"architecture": arch, "os": "linux"}, layers=[arch.encode()])
        r = await client.get(f"/v2/team/multi/manifests/{d}")
        children.append({"mediaType": mt.OCI_MANIFEST, "digest": d, "size": len(await r.read()),
                         "platform": {"os": "linux", "architecture": arch}})
    raw = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": children}).encode()
    r = await client.put("/v2/team/multi/manifests/latest", data=raw, headers={"Content-Type": mt.OCI_INDEX})
    assert r.status == 201
    html = await get_html(client, "/ui/r/team/multi/-/manifest/latest")
    assert "Platforms" in html and "linux/amd64" in html and "linux/arm64" in html
    assert children[0]["digest"][:19] in html
    tags = await get_json(client, "/api/v1/repositories/team/multi/tags")
    assert tags["tags"][0]["kind"] == "index" and tags["tags"][0]["platforms"] == ["linux/amd64", "linux/arm64"]


async def test_referrers_appear_on_the_image_page(client):
    digest, raw = await push_image(client, "team/signed", "v1")
    sig = await push_described(client, "team/signed", None, artifact_type="application/vnd.dev.cosign.signature",
                               annotations={"org.example.signer": "release-bot"}, subject=(digest, len(raw)))
    html = await get_html(client, f"/ui/r/team/signed/-/manifest/{digest}")
    assert "application/vnd.dev.cosign.signature" in html and "release-bot" in html and sig[:19] in html
    api = await get_json(client, f"/api/v1/repositories/team/signed/manifests/{digest}")
    assert [r["digest"] for r in api["referrers"]] == [sig]
    art = await get_html(client, f"/ui/r/team/signed/-/manifest/{sig}")
    assert "attached to" in art and digest[:19] in art


async def test_hostile_labels_and_annotations_are_text_not_markup(client):
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Labels": {HOSTILE: HOSTILE}, "Env": [f"X={HOSTILE}"], "Cmd": [HOSTILE]},
              "history": [{"created_by": HOSTILE}]}
    digest = await push_described(client, "evil/app", "v1", config=config, layers=[b"x"],
                                  annotations={"org.opencontainers.image.description": HOSTILE})
    await push_described(client, "evil/app", None, artifact_type=f"application/x-{HOSTILE}",
                         annotations={"note": HOSTILE}, subject=(digest, 0))
    for path in (f"/ui/r/evil/app/-/manifest/{digest}", "/ui/r/evil/app", f"/ui/?q={HOSTILE}"):
        html = await get_html(client, path)
        assert "<script>alert" not in html and "<img src=x" not in html, path
    html = await get_html(client, f"/ui/r/evil/app/-/manifest/{digest}")
    assert "&lt;script&gt;alert(" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    api = await get_json(client, f"/api/v1/repositories/evil/app/manifests/{digest}")
    assert api["config"]["labels"] == {HOSTILE: HOSTILE} and api["annotations"]["org.opencontainers.image.description"] == HOSTILE


async def test_odd_config_types_render(client):
    """Config fields of the wrong JSON type (user input) are refused on push (#13.3), and what got
    in before that check is shown as text, not a 500."""
    config = {"architecture": 7, "os": ["linux"], "created": 12345, "variant": {"v": 7},
              "config": {"Cmd": "sh -c true", "Env": {"A": 1}, "Labels": ["x"], "ExposedPorts": ["80/tcp"],
                         "User": 0, "WorkingDir": {"w": 1}},
              "history": [{"created": {"t": 1}, "created_by": 42}, "not an object"]}
    cfg = json.dumps(config).encode()
    await push_blob(client, "odd/types", cfg)
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "layers": [],
           "config": {"mediaType": mt.OCI_CONFIG, "digest": str(Digest.of(cfg)), "size": len(cfg)}}
    r = await client.put("/v2/odd/types/manifests/v0", data=json.dumps(doc), headers={"Content-Type": mt.OCI_MANIFEST})
    assert r.status == 400
    err = (await r.json())["errors"][0]
    assert err["code"] == "MANIFEST_INVALID" and err["detail"]["field"] == "created", err
    digest = await push_described(client, "odd/types", "v1", config=config, layers=[b"z"], stored_directly=True)
    html = await get_html(client, f"/ui/r/odd/types/-/manifest/{digest}")
    assert "sh -c true" in html and "42" in html
    await get_html(client, "/ui/r/odd/types")
    await get_json(client, "/api/v1/repositories/odd/types/tags")
    other = await push_described(client, "odd/types", "v2", config={"os": "linux", "history": 5}, layers=[b"y"],
                                 stored_directly=True)
    await get_html(client, f"/ui/r/odd/types/-/manifest/{other}")
    await get_html(client, "/ui/r/odd/types")


async def test_odd_index_platforms_are_refused_and_render(client):
    """An index child platform with a non-string field: refused on push; stored before, it
    leaves the repository's pages working (#13.3)."""
    child = await push_described(client, "odd/index", "child", layers=[b"c"])
    r = await client.get(f"/v2/odd/index/manifests/{child}")
    size = len(await r.read())
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        {"mediaType": mt.OCI_MANIFEST, "digest": child, "size": size,
         "platform": {"os": "linux", "architecture": "arm", "variant": 7}}]}
    raw = json.dumps(doc).encode()
    r = await client.put("/v2/odd/index/manifests/multi", data=raw, headers={"Content-Type": mt.OCI_INDEX})
    assert r.status == 400
    err = (await r.json())["errors"][0]
    assert err["code"] == "MANIFEST_INVALID" and err["detail"]["field"] == "manifests[0].platform.variant", err
    from registry import state
    from registry.index import ManifestRecord

    app = client.server.app
    await app[state.STORAGE].put(Digest.of(raw), raw)
    await app[state.INDEX].put_manifest("odd/index", ManifestRecord(str(Digest.of(raw)), mt.OCI_INDEX, len(raw),
                                                                    children=(child,), tags=("multi",)))
    await get_html(client, "/ui/r/odd/index")
    await get_html(client, f"/ui/r/odd/index/-/manifest/{Digest.of(raw)}")
    await get_json(client, "/api/v1/repositories/odd/index/tags")
    await get_json(client, "/api/v1/repositories/odd/index/manifests/multi")


async def test_json_api_mirrors_the_pages(client):
    await push_image(client, "api/one", "v1")
    await push_image(client, "api/two", "v1")
    await push_image(client, "api/two", "v2")
    listing = await get_json(client, "/api/v1/repositories?q=two")
    assert listing["total"] == 1 and listing["repositories"][0]["name"] == "api/two"
    assert listing["repositories"][0]["tag_count"] == 2 and listing["repositories"][0]["size"] > 0
    by_tags = await get_json(client, "/api/v1/repositories?sort=tags")
    assert [r["name"] for r in by_tags["repositories"]] == ["api/two", "api/one"]
    paged = await get_json(client, "/api/v1/repositories?per_page=1&page=2")
    assert paged["pages"] == 2 and [r["name"] for r in paged["repositories"]] == ["api/two"]
    assert (await get_json(client, "/api/v1/repositories/api/two"))["tag_count"] == 2
    tags = await get_json(client, "/api/v1/repositories/api/two/tags?sort=name&order=desc")
    assert [t["name"] for t in tags["tags"]] == ["v2", "v1"] and tags["tags"][0]["platforms"] == ["linux/amd64"]
    await get_json(client, "/api/v1/repositories/api/none/tags", status=404)
    await get_json(client, "/api/v1/repositories/api/two/manifests/nope", status=404)
    stats = await get_json(client, "/api/v1/stats")
    assert stats["repositories"] == 2 and stats["tags"] == 3 and stats["blobs"] >= 6
    assert "GET /v1/search?q=&n=&page=" in " ".join((await get_json(client, "/api/v1/"))["endpoints"])
    docs = await get_html(client, "/ui/api")
    assert "/api/v1/repositories/{name}/tags" in docs and "num_results" in docs


async def test_dedup_savings_and_fresh_ranking_after_push(client):
    shared = b"s" * 5000
    await push_described(client, "dedup/a", "v1", layers=[shared])
    assert (await get_json(client, "/api/v1/stats"))["saved_bytes"] == 0
    await push_described(client, "dedup/b", "v1", layers=[shared, b"tiny"])
    stats = await get_json(client, "/api/v1/stats")
    assert stats["saved_bytes"] >= 5000  # the shared layer is stored once, held by two repositories
    by_size = await get_json(client, "/api/v1/repositories?sort=size")
    assert by_size["repositories"][0]["name"] == "dedup/b"


async def test_v1_search_in_docker_format(client):
    for name in ("search/nginx", "search/nginx-proxy", "other/redis"):
        await push_image(client, name, "latest")
    body = await get_json(client, "/v1/search?q=nginx&n=25")
    assert body["num_results"] == 2 and body["query"] == "nginx"
    assert [r["name"] for r in body["results"]] == ["search/nginx", "search/nginx-proxy"]
    assert set(body["results"][0]) >= {"name", "description", "star_count", "is_official", "is_automated"}
    page2 = await get_json(client, "/v1/search?q=nginx&n=1&page=2")
    assert [r["name"] for r in page2["results"]] == ["search/nginx-proxy"]


async def test_search_gives_the_same_answer_from_sql_and_from_the_snapshot(client):
    for name in ("same/web", "same/web-2", "other/db", "x/webhook"):
        await push_image(client, name, "v1")
    path = "/api/v1/repositories?q=web&per_page=2&page=2"
    from_sql = await get_json(client, path)  # pushes just made the snapshot stale: SQL answers
    await get_json(client, "/api/v1/stats")  # refreshes the snapshot
    from_memory = await get_json(client, path)
    assert from_sql == from_memory and from_sql["total"] == 3
    assert [r["name"] for r in from_memory["repositories"]] == ["x/webhook"]

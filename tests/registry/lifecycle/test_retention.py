"""Retention rules: keep_last by push time over the tags keep_tags does not match, older_than,
protected; untagged manifests go through the GC queue; dry-run changes nothing."""
from __future__ import annotations

import json
import subprocess

from sqlalchemy import update

from registry import state
from registry.index.models import Tag
from registry.lifecycle import WORKER
from registry.lifecycle.retention import apply_retention, doomed_tags
from registry.lifecycle.settings import RetentionRule, RetentionSettings
from tests.registry.lifecycle.gc_support import gc_app, stored
from tests.registry.oci_client import push_image
from tests.servers import REGISTRY_BIN


def test_rule_arithmetic():
    rule = RetentionRule("team/*", keep_last=2, keep_tags=("latest", "v*"), older_than=100)
    tags = [("latest", "a", 1), ("v1", "b", 2), ("c1", "c", 3), ("c2", "d", 4), ("c3", "e", 5), ("c4", "f", 500)]
    # keep_last counts only c1..c4: c4 and c3 stay; of c1, c2 only those older than 100 s go.
    assert doomed_tags(rule, tags, now=1000) == [("c2", "d"), ("c1", "c")]
    assert doomed_tags(RetentionRule("x", keep_last=1), tags, now=1000) == [
        ("c3", "e"), ("c2", "d"), ("c1", "c"), ("v1", "b"), ("latest", "a")]
    assert doomed_tags(RetentionRule("x", older_than=10, protected=("c*",)), tags, now=505) == [("v1", "b"), ("latest", "a")]


async def _pushed(app, client, repo: str, tags: list[str]) -> dict[str, tuple[str, list[str]]]:
    out = {}
    for i, tag in enumerate(tags):
        digest, raw = await push_image(client, repo, tag)
        out[tag] = (digest, [d["digest"] for d in json.loads(raw)["layers"]])
        # push time, oldest first, spread over days
        await app[state.INDEX].db.write(lambda conn, t=tag, i=i: conn.execute(
            update(Tag).where(Tag.name == t).values(updated_at=1000.0 + i * 86400)))
    return out


async def test_retention_deletes_tags_and_their_manifests_through_gc(aiohttp_client, config):
    app, client = await gc_app(aiohttp_client, config)  # untagged_after 0: only retention's force deletes
    images = await _pushed(app, client, "team/web", ["old1", "old2", "new1", "latest", "v1"])
    await push_image(client, "other/web", "old1")
    settings = RetentionSettings(rules=(RetentionRule("team/*", keep_last=1, keep_tags=("latest", "v*")),))

    dry = await apply_retention(app[state.INDEX], settings, dry_run=True)
    assert sorted(t for _, t, _ in dry.tags) == ["old1", "old2"]
    assert dry.freed_bytes > 0
    assert (await client.get("/v2/team/web/manifests/old1")).status == 200  # nothing changed

    report = await apply_retention(app[state.INDEX], settings)
    assert sorted(t for _, t, _ in report.tags) == ["old1", "old2"] and report.freed_bytes == dry.freed_bytes
    tags = (await (await client.get("/v2/team/web/tags/list")).json())["tags"]
    assert sorted(tags) == ["latest", "new1", "v1"]
    await app[WORKER].drain()
    for tag in ("old1", "old2"):
        digest, layers = images[tag]
        assert (await client.get(f"/v2/team/web/manifests/{digest}")).status == 404
        assert not any([await stored(app, d) for d in layers])
    for tag in ("new1", "latest", "v1"):
        assert (await client.get(f"/v2/team/web/manifests/{tag}")).status == 200
    assert (await client.get("/v2/other/web/manifests/old1")).status == 200  # no rule matches it
    assert app[WORKER].counters.bytes_freed >= report.freed_bytes


def test_retention_command_dry_run(tmp_path):
    cfg = tmp_path / "registry.yml"
    cfg.write_text(f"data_dir: {tmp_path}\nretention:\n  rules:\n    - repositories: 'team/**'\n      keep_last: 1\n")
    r = subprocess.run([str(REGISTRY_BIN), "retention", "--dry-run", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "would delete 0 tag(s)" in r.stdout and "0 bytes freed" in r.stdout

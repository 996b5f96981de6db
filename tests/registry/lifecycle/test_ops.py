"""/metrics (parsed with prometheus_client's own parser while a push runs), the access log's
fields and its silence about secrets, /healthz and /readyz."""
from __future__ import annotations

import asyncio
import base64
import json
import logging

from prometheus_client.parser import text_string_to_metric_families

from registry.app import create_app
from tests.registry.oci_client import blob, push_blob, push_image


def _families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


async def test_metrics_scraped_while_a_push_runs(aiohttp_client, config):
    app = create_app(config)
    client = await aiohttp_client(app)
    from registry.ops import METRICS

    app[METRICS].usage_ttl = 0  # (30 s in production: usage is a query)
    data, digest = blob(3 << 20)
    r = await client.post("/v2/m/blobs/uploads/")
    location = r.headers["Location"]

    async def slow_body():
        for i in range(0, len(data), 1 << 20):
            yield data[i:i + (1 << 20)]
            await asyncio.sleep(0.2)

    patch = asyncio.create_task(client.patch(location, data=slow_body(), headers={"Content-Type": "application/octet-stream"}))
    await asyncio.sleep(0.1)
    during = _families(await (await client.get("/metrics")).text())
    assert during["dockyard_registry_uploads_in_flight"].samples[0].value == 1
    r = await patch
    await client.put(f"{r.headers['Location']}?digest={digest}")
    await push_image(client, "m", "v1")
    text = await (await client.get("/metrics")).text()
    fams = _families(text)
    assert all(name.startswith("dockyard_registry_") for name in fams), sorted(fams)
    requests = {(s.labels["route"], s.labels["method"], s.labels["status"]): s.value
                for s in fams["dockyard_registry_http_requests"].samples if s.name.endswith("_total")}
    assert requests[("v2.manifest.put", "PUT", "201")] == 1
    assert requests[("v2.upload.patch", "PATCH", "202")] == 1
    counts = [s for s in fams["dockyard_registry_http_request_duration_seconds"].samples
              if s.name.endswith("_count") and s.labels["route"] == "v2.upload.patch"]
    assert counts and counts[0].value == 1
    received = [s.value for s in fams["dockyard_registry_http_received_bytes"].samples if s.name.endswith("_total")]
    assert received[0] >= len(data)
    assert fams["dockyard_registry_uploads_in_flight"].samples[0].value == 0
    storage = {s.labels["namespace"]: s.value for s in fams["dockyard_registry_storage_bytes"].samples}
    assert storage["m"] > len(data)
    for name in ("dockyard_registry_gc_reviews", "dockyard_registry_gc_bytes_freed", "dockyard_registry_db_pool_connections"):
        assert name in fams, name


async def test_access_log_fields_and_no_secrets(aiohttp_client, config, caplog):
    config.log_format = "json"
    client = await aiohttp_client(create_app(config))
    logger = logging.getLogger("registry.access.json")
    logger.propagate = True  # let caplog see it (the real handler writes to stderr)
    try:
        with caplog.at_level(logging.INFO, logger="registry.access.json"):
            data, digest = blob()
            await push_blob(client, "team/web", data)
            await client.get(f"/v2/team/web/blobs/{digest}?token=s3cr3t-query",
                             headers={"Authorization": "Bearer s3cr3t-token-value"})
            basic = base64.b64encode(b"alice:hunter2-password").decode()
            await client.get("/v2/_catalog", headers={"Authorization": f"Basic {basic}"})
    finally:
        logger.propagate = False
    lines = [r.getMessage() for r in caplog.records if r.name == "registry.access.json"]
    assert len(lines) == 3
    entries = [json.loads(line) for line in lines]
    keys = ["request_id", "client", "user", "method", "route", "repository", "status", "bytes", "duration_ms"]
    assert all(list(e) == keys for e in entries)
    push, pull, catalog = entries
    assert (push["method"], push["route"], push["repository"], push["status"]) == ("POST", "v2.upload.start", "team/web", 201)
    assert (pull["route"], pull["status"], pull["bytes"]) == ("v2.blob.get", 200, len(data))
    assert catalog["repository"] is None and pull["client"] == "127.0.0.1" and pull["duration_ms"] >= 0
    text = "\n".join(lines)
    for secret in ("s3cr3t", "hunter2", "Bearer", "Authorization", "YWxpY2U"):
        assert secret not in text


async def test_access_log_lines_go_straight_to_its_own_stream(aiohttp_client, config, monkeypatch):
    """The access log's own handler alone: each line is written to its stream (no LogRecord),
    one line per request, in the text format; another handler added to it still gets them."""
    import io

    client = await aiohttp_client(create_app(config))
    logger = logging.getLogger("registry.access.text")
    (handler,) = logger.handlers
    stream = io.StringIO()
    monkeypatch.setattr(handler, "stream", stream)
    made = []
    real = logging.Logger.makeRecord
    monkeypatch.setattr(logging.Logger, "makeRecord",
                        lambda self, name, *a, **k: (made.append(name), real(self, name, *a, **k))[1])
    data, _ = blob()
    await push_blob(client, "team/log", data)
    assert (await client.get("/v2/team/log/tags/list")).status == 200
    lines = stream.getvalue().splitlines()
    assert [line.split(" ")[3:6] for line in lines] == [["POST", "v2.upload.start", "team/log"],
                                                        ["GET", "v2.tags.list", "team/log"]]
    assert "registry.access.text" not in made
    extra = logging.Handler()
    extra.emit = lambda record: made.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(extra)
    try:
        assert (await client.get("/v2/team/log/tags/list")).status == 200
    finally:
        logger.removeHandler(extra)
    assert len(stream.getvalue().splitlines()) == 3 and "GET v2.tags.list team/log 200" in made[-1]


async def test_health_and_readiness(aiohttp_client, config):
    app = create_app(config)
    client = await aiohttp_client(app)
    assert (await client.get("/healthz")).status == 200
    r = await client.get("/readyz")
    assert r.status == 200 and (await r.json())["checks"] == {"database": "ok", "storage": "ok"}
    from registry import state

    async def broken(*a, **k):
        raise ConnectionError("database down")

    app[state.INDEX].db.read = broken
    r = await client.get("/readyz")
    body = await r.json()
    assert r.status == 503 and body["checks"]["database"].startswith("failed") and body["checks"]["storage"] == "ok"

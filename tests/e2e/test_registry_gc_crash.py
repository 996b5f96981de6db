"""kill -9 while the online GC worker sweeps, restart: the sweep resumes, every image that is
still named is complete, every unreferenced blob goes, and ``fsck`` is clean."""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import sqlite3
import subprocess
import time

import pytest

from tests.servers import REGISTRY_BIN

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _request(host: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection(host, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def _push(host: str, repo: str, tag: str, blobs: list[bytes]) -> str:
    for b in blobs:
        status, body = _request(host, "POST", f"/v2/{repo}/blobs/uploads/?digest={_digest(b)}", b)
        assert status == 201, body
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _digest(blobs[0]), "size": len(blobs[0])},
           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _digest(b), "size": len(b)} for b in blobs[1:]]}
    raw = json.dumps(doc).encode()
    status, body = _request(host, "PUT", f"/v2/{repo}/manifests/{tag}", raw, {"Content-Type": OCI_MANIFEST})
    assert status == 201, body
    return _digest(raw)


def _stored(data_dir) -> set[str]:
    root = data_dir / "blobs" / "sha256"
    return {f"sha256:{p.name}" for p in root.glob("*/*")} if root.exists() else set()


def test_kill_during_gc_then_restart_is_consistent(dockyard_registry):
    reg = dockyard_registry(env={"DOCKYARD_REGISTRY_GC__REVIEW_DELAY": "1h"})  # pushes need their grace
    kept: list[tuple[str, list[bytes]]] = []
    doomed: list[tuple[str, str]] = []
    for i in range(40):
        blobs = [json.dumps({"os": "linux", "i": i}).encode(), *(os.urandom(20_000) for _ in range(4))]
        repo = f"gc/r{i % 4}"
        digest = _push(reg.host, repo, f"t{i}", blobs)
        (kept.append((f"{repo}:t{i}", blobs)) if i % 4 == 0 else doomed.append((repo, digest)))
    reg.stop()
    reg.env = {"DOCKYARD_REGISTRY_GC__REVIEW_DELAY": "0"}
    reg.start()
    for repo, digest in doomed:
        status, _ = _request(reg.host, "DELETE", f"/v2/{repo}/manifests/{digest}")
        assert status == 202
    # The uploads' reviews wait an hour (the pushes' grace); make every review due now.
    with sqlite3.connect(reg.data_dir / "index.db") as db:
        db.execute("UPDATE gc_blob_reviews SET review_after = 0")
    before = len(_stored(reg.data_dir))
    want = {_digest(b) for _, blobs in kept for b in blobs}
    deadline = time.monotonic() + 60
    while len(_stored(reg.data_dir)) >= before - 3:  # the worker has started sweeping
        assert time.monotonic() < deadline, "the worker swept nothing"
        time.sleep(0.005)
    reg.kill()
    left = _stored(reg.data_dir)
    assert len(left) > len(want) + 10, "killed too late: the sweep had finished"
    reg.start()
    deadline = time.monotonic() + 90
    while True:  # the restarted worker resumes (condemned rows after RESUME_AFTER) and finishes
        stored = _stored(reg.data_dir)
        if len(stored) <= len(want) + len(kept):  # kept images' manifests are blobs too
            break
        assert time.monotonic() < deadline, f"{len(stored)} blobs left"
        time.sleep(0.2)
    # Bytes go before rows: wait for the last sweep's rows too, or fsck sees a link whose bytes the
    # sweep already removed (the state a stop between the two steps leaves until the next resume).
    while True:
        with sqlite3.connect(reg.data_dir / "index.db") as db:
            pending = db.execute("SELECT (SELECT count(*) FROM gc_blob_reviews) + "
                                 "(SELECT count(*) FROM gc_manifest_reviews)").fetchone()[0]
        if pending == 0:
            break
        assert time.monotonic() < deadline, f"{pending} reviews left"
        time.sleep(0.2)
    assert want <= stored
    for ref, blobs in kept:
        repo, tag = ref.split(":")
        status, _ = _request(reg.host, "GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        assert status == 200
        for b in blobs:
            status, body = _request(reg.host, "GET", f"/v2/{repo}/blobs/{_digest(b)}")
            assert status == 200 and body == b, f"{ref} lost a blob"
    reg.stop()
    fsck = subprocess.run([str(REGISTRY_BIN), "fsck", "--data-dir", str(reg.data_dir)],
                          capture_output=True, text=True, timeout=120)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr

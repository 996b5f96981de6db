"""Fill an index directly (no HTTP) with a registry-sized catalog, for bench/catalog.py.

Shape, for ``repositories`` R and ``tags`` T (spread evenly):
- R repositories ``team-<k % 50>/service-<k>``; every tag points at its own image manifest
  (config + a base layer shared by all repositories + one layer of its own), so the index holds
  T manifests, 2T+1 blobs, their references and repository links — the same rows a push makes.
- ``with_bytes`` repositories (the first ones in name order) also get the manifest and config
  bytes in storage, so their tag and image pages render everything a real push would show.
Rows are written in large batches inside a few transactions: 20k/100k takes seconds.
"""
from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path

from sqlalchemy import Connection, insert

from oci.digest import Digest
from registry.index import Index
from registry.storage.layout import Layout
from registry.index.models import Blob, Manifest, ManifestReference, Repository, RepositoryBlob, Tag

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
BASE_SIZE = 2_000_000
BATCH = 5000


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def repo_name(k: int) -> str:
    return f"team-{k % 50:02d}/service-{k:05d}"


def _config(k: int, t: int) -> bytes:
    return json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/serve", f"--id={k}"], "Env": ["PATH=/bin"], "ExposedPorts": {"8080/tcp": {}}},
        "rootfs": {"type": "layers", "diff_ids": [_sha(b"base"), _sha(f"l{k}.{t}".encode())]},
        "history": [{"created_by": "ADD rootfs /"}, {"created_by": f"COPY service-{k} /srv"}],
    }).encode()


def _manifest(config: bytes, layer_digest: str, layer_size: int, base: str) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": _sha(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": base, "size": BASE_SIZE},
                   {"mediaType": OCI_LAYER, "digest": layer_digest, "size": layer_size}],
    }).encode()


async def seed(index: Index, repositories: int, tags: int, storage_root: Path | None = None,
               with_bytes: int = 0) -> dict[str, int]:
    """Insert the catalog; returns counts. ``storage_root``: the filesystem driver's root."""
    rng = random.Random(7)
    now = time.time()
    base = _sha(b"base-layer")
    per_repo = [tags // repositories + (1 if k < tags % repositories else 0) for k in range(repositories)]
    repos, blobs, links, manifests, refs, tag_rows = [], [{"digest": base, "size": BASE_SIZE, "created_at": now}], [], [], [], []
    files: dict[str, bytes] = {}
    by_name = sorted(range(repositories), key=repo_name)
    keep_bytes = set(by_name[:with_bytes])
    mid = 0
    for k in range(repositories):
        rid = k + 1
        repos.append({"id": rid, "name": repo_name(k), "created_at": now - 86400 * 30})
        links.append({"repository_id": rid, "digest": base, "created_at": now})
        for t in range(per_repo[k]):
            mid += 1
            config = _config(k, t)
            layer = _sha(f"layer-{k}-{t}".encode())
            layer_size = rng.randint(1000, 50_000_000)
            raw = _manifest(config, layer, layer_size, base)
            cfg_d, man_d = _sha(config), _sha(raw)
            pushed = now - rng.uniform(0, 86400 * 365)
            for digest, size in ((cfg_d, len(config)), (layer, layer_size), (man_d, len(raw))):
                blobs.append({"digest": digest, "size": size, "created_at": pushed})
                links.append({"repository_id": rid, "digest": digest, "created_at": pushed})
            manifests.append({"id": mid, "repository_id": rid, "digest": man_d, "media_type": OCI_MANIFEST,
                              "size": len(raw), "artifact_type": OCI_CONFIG, "created_at": pushed})
            refs += [{"manifest_id": mid, "digest": d, "kind": "blob"} for d in (cfg_d, base, layer)]
            tag_rows.append({"repository_id": rid, "name": "latest" if t == 0 else f"v{t}.{k % 7}",
                             "manifest_digest": man_d, "updated_at": pushed})
            if k in keep_bytes:
                files[cfg_d], files[man_d] = config, raw

    def batches(conn: Connection, table, rows: list[dict]) -> None:
        for i in range(0, len(rows), BATCH):
            conn.execute(insert(table), rows[i:i + BATCH])

    def tx(conn: Connection) -> None:
        for table, rows in ((Repository, repos), (Blob, blobs), (RepositoryBlob, links), (Manifest, manifests),
                            (ManifestReference, refs), (Tag, tag_rows)):
            batches(conn, table, rows)

    await index.db.write(tx)
    if storage_root is not None:
        for digest, data in files.items():
            path = Layout(storage_root).blob_path(Digest.parse(digest))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return {"repositories": len(repos), "tags": len(tag_rows), "blobs": len(blobs), "manifests": len(manifests)}

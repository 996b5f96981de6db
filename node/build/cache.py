"""The build cache: which layer a step made last time, keyed like Docker's.

A step's key is sha256 over its parent's key, the instruction with its resolved arguments and,
for COPY/ADD, the checksum of what it copies (content and metadata, never mtimes: see
context.py). The chain starts at the base image's ID (or "scratch"), so a rebuilt base changes
every key below it. Metadata-only steps (ENV, LABEL...) store nothing: their keys only chain.

    ROOT/build/cache/
      records/<key-hex>.json    {"diff_id", "digest", "size", "tar_size", "media_type", "chain",
                                 "created_by", "used": unix time}
      lock                      flock around record and pin updates
    ROOT/images/pins/build-cache.json   the blobs and snapshots the records name, so the image
                                        store's sweep (rmi, prune) keeps them

A record counts only while its blob and snapshot are still in the store.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from oci.digest import Digest

from node.images.fsutil import locked


def _write(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically, without fsync: a cache record lost in a crash costs one
    rebuilt step, and the pins file is rewritten from the records at the next put."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def step_key(parent: str, *parts: object) -> str:
    """The key of a step below ``parent`` (a key, or the base's identity)."""
    h = hashlib.sha256()
    h.update(parent.encode())
    h.update(b"\0")
    h.update(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()


class BuildCache:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.dir = self.root / "build" / "cache"
        self.records = self.dir / "records"
        self.pins = self.root / "images" / "pins" / "build-cache.json"

    def _lock(self):  # noqa: D401 - held around record writes and the pins rewrite
        return locked(self.dir / "lock")

    def get(self, key: str, content) -> dict | None:
        path = self.records / f"{key}.json"
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if rec.get("empty"):
            return rec
        if not content.has_blob(Digest.parse(rec["digest"])) or not content.has_snapshot(Digest.parse(rec["chain"])):
            return None
        return rec

    def put(self, key: str, rec: dict) -> None:
        rec = dict(rec, used=int(time.time()))
        with self._lock():
            _write(self.records / f"{key}.json", json.dumps(rec).encode())
            if not rec.get("empty"):
                self._add_pin(rec)

    def _add_pin(self, rec: dict) -> None:
        """One more blob and snapshot in the pins file (not a rewrite from every record)."""
        try:
            doc = json.loads(self.pins.read_text())
        except (OSError, ValueError):
            self._write_pins()
            return
        blobs, snaps = set(doc.get("blobs", [])), set(doc.get("snapshots", []))
        blob, snap = rec["digest"], rec["chain"].split(":", 1)[-1]
        if blob in blobs and snap in snaps:
            return
        blobs.add(blob)
        snaps.add(snap)
        _write(self.pins, json.dumps({"blobs": sorted(blobs), "snapshots": sorted(snaps)}).encode())

    def _all(self) -> list[tuple[Path, dict]]:
        out = []
        if not self.records.is_dir():
            return out
        for path in sorted(self.records.glob("*.json")):
            try:
                out.append((path, json.loads(path.read_text())))
            except (OSError, ValueError):
                continue
        return out

    def _write_pins(self) -> None:
        blobs, snaps = set(), set()
        for _, rec in self._all():
            if rec.get("empty"):
                continue
            blobs.add(rec["digest"])
            snaps.add(rec["chain"].split(":", 1)[-1])
        _write(self.pins, json.dumps({"blobs": sorted(blobs), "snapshots": sorted(snaps)}).encode())

    def usage(self) -> tuple[int, int]:
        """(records, compressed bytes they name)."""
        recs = self._all()
        return len(recs), sum(int(r.get("size", 0)) for _, r in recs)

    def prune(self, store) -> int:
        """Forget every record; the store's sweep then deletes what no image still needs.
        Returns the bytes reclaimed (blobs and snapshots that went)."""
        before = _disk_usage(store)
        with self._lock():
            for path, _ in self._all():
                path.unlink(missing_ok=True)
            self._write_pins()
        store.collect()
        return max(0, before - _disk_usage(store))


def _disk_usage(store) -> int:
    total = 0
    for base in (store.content.blobs, store.content.snapshots):
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                try:
                    total += os.lstat(os.path.join(dirpath, name)).st_size
                except OSError:
                    pass
    return total

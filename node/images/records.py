"""The image records file, ``<root>/images/images.json``, read on its own (store.py writes it).

`dockyard images` and `dockyard ps` list from this one small file: every field they show is in
the record (tags, digests, size, created), so they need neither the content store nor oci/'s
manifest types (importing node.images.store costs ~15 ms: hashlib, pathlib, the record
classes) nor the 50 image configs those types would parse. The config, needed only for a
`label=` filter, is read when first asked for.
"""
from __future__ import annotations

import os

from .errors import ImageError


def records_path(root) -> str:
    return os.path.join(os.fspath(root), "images", "images.json")


def read_records(root) -> dict:
    """{config digest: record} as store.py wrote it; {} when nothing was ever pulled."""
    path = records_path(root)
    try:
        with open(path, "rb") as f:
            doc = _loads(f.read())
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise ImageError(f"image records {path} are corrupt: {e}") from None
    return doc.get("images", {})


def _loads(data: bytes):
    """json.loads(data) without importing json (its decoder imports `re` and enum, ~4 ms of every
    `images`) for the file store.py writes (UTF-8, an object first): json's own C scanner, as
    node/runtime/specfile.py builds it; anything else goes to json.loads, result or error alike.
    (node/engine/records.py's loads_json is the same for container records.)"""
    if len(data) >= 2 and data[0] in b"{[" and data[1]:  # json.detect_encoding: utf-8
        from node.runtime.specfile import loads
        return loads(data.decode("utf-8", "surrogatepass"))
    import json
    return json.loads(data)


class ImageSummary:
    """What `images` shows of one image, straight from its record."""

    __slots__ = ("root", "record", "_config")

    def __init__(self, root, record: dict) -> None:
        self.root, self.record, self._config = root, record, None

    @property
    def id(self) -> str:
        return self.record["id"]

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]

    @property
    def repo_tags(self) -> list:
        return list(self.record.get("repo_tags", []))

    @property
    def repo_digests(self) -> list:
        return list(self.record.get("repo_digests", []))

    @property
    def size(self) -> int:
        return int(self.record.get("size", 0))

    @property
    def created(self) -> str | None:
        return self.record.get("created")

    @property
    def config(self):
        """The parsed image config (oci.manifest.ImageConfig), read from the store on first use."""
        if self._config is None:
            from .store import ImageStore
            self._config = ImageStore(self.root).get(self.id).config
        return self._config


def list_summaries(root) -> list[ImageSummary]:
    """Every image, newest first (the order of ImageStore.list)."""
    recs = sorted(read_records(root).values(), key=lambda r: r.get("created") or "", reverse=True)
    return [ImageSummary(root, r) for r in recs]


def sizes_by_id(root) -> dict[str, int]:
    return {iid: int(rec.get("size", 0)) for iid, rec in read_records(root).items()}

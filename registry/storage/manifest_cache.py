"""A small in-memory LRU of manifest bytes by digest: GET by tag is one indexed query plus,
usually, no file read at all. Safe to share between repositories: the key is the content digest
(and a read reaches it only after the index said the repository holds that manifest). It sits
beside the storage it saves reads from, so registry.state needs nothing from the API.
"""
from __future__ import annotations

from collections import OrderedDict


class ManifestCache:
    def __init__(self, max_bytes: int = 32 << 20, max_item: int = 256 << 10) -> None:
        self.max_bytes, self.max_item = max_bytes, max_item
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0

    def get(self, digest: str) -> bytes | None:
        data = self._items.get(digest)
        if data is not None:
            self._items.move_to_end(digest)
        return data

    def put(self, digest: str, data: bytes) -> None:
        if len(data) > self.max_item or digest in self._items:
            return
        self._items[digest] = data
        self._size += len(data)
        while self._size > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self._size -= len(old)

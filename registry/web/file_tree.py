"""An image's merged file tree: its layers applied in order, whiteouts honoured, as the
container would see its root file system.

Per layer (all read as streams by registry/web/layer_files.py): first its whiteouts act on the
layers below (``.wh.NAME`` removes NAME and everything under it; ``.wh..wh..opq`` in a
directory removes everything the lower layers had in it), then its entries are added (a path in
an upper layer replaces the lower one). Whiteouts are applied in one pass per layer over the
tree (each path checks its ancestors against the layer's sets), so a hostile layer full of
whiteouts costs O(tree x depth), not O(tree x whiteouts).

The whole image is scanned once (at most ``MAX_TREE_BYTES`` decompressed per layer and
``MAX_TREE_ENTRIES`` entries in all; past that the tree is marked partial) and kept by manifest
digest (content never changes) in a small LRU, bounded by the number of entries it holds.
Searching and paging then work on the sorted paths in memory.
"""
from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

from .layer_files import Capped, FileEntry, FileList, iter_entries, scan

MAX_TREE_BYTES = 1024 * 1024 * 1024
MAX_TREE_ENTRIES = 500_000
CACHE_ENTRIES = 1_000_000  # summed over the cached trees


@dataclass
class Tree:
    entries: list[FileEntry] = field(default_factory=list)  # sorted by path
    partial: str | None = None  # why the tree is incomplete


def _under(path: str, dirs: set[str]) -> bool:
    """Is ``path`` (strictly) inside one of ``dirs``?"""
    parent = path.rsplit("/", 1)[0]
    while parent:
        if parent in dirs:
            return True
        parent = parent.rsplit("/", 1)[0]
    return "/" in dirs and path != "/"


def apply_layer(tree: dict[str, FileEntry], layer: list[FileEntry]) -> None:
    removed: set[str] = set()  # whited-out paths (and what is under them)
    opaque: set[str] = set()  # directories whose lower contents are hidden
    for e in layer:
        parent, _, base = e.path.rpartition("/")
        parent = parent or "/"
        if e.type == "opaque":
            opaque.add(parent)
        elif e.type == "whiteout":
            removed.add((parent.rstrip("/") + "/" + base[4:]) if parent != "/" else "/" + base[4:])
    if removed or opaque:
        for path in [p for p in tree if p in removed or _under(p, removed) or _under(p, opaque)]:
            del tree[path]
    for e in layer:
        if e.type not in ("opaque", "whiteout"):
            tree[e.path] = e


def build(layers: list[list[FileEntry]]) -> dict[str, FileEntry]:
    tree: dict[str, FileEntry] = {}
    for layer in layers:
        apply_layer(tree, layer)
    return tree


class TreeCache:
    def __init__(self, storage) -> None:
        self.storage = storage
        self._trees: OrderedDict[str, Tree] = OrderedDict()
        self._building: dict[str, asyncio.Task] = {}

    async def tree(self, manifest_digest: str, layer_digests: list[str]) -> Tree:
        hit = self._trees.get(manifest_digest)
        if hit is not None:
            self._trees.move_to_end(manifest_digest)
            return hit
        task = self._building.get(manifest_digest)
        if task is None:  # one build per image, however many ask at once
            task = self._building[manifest_digest] = asyncio.create_task(self._build(layer_digests))
        try:
            tree = await asyncio.shield(task)
        finally:
            self._building.pop(manifest_digest, None)
        self._keep(manifest_digest, tree)
        return tree

    async def _build(self, layer_digests: list[str]) -> Tree:
        merged: dict[str, FileEntry] = {}
        budget_entries, partial = MAX_TREE_ENTRIES, None
        for number, digest in enumerate(layer_digests, 1):
            def read(raw, number=number, entries_left=budget_entries):
                out, why = [], None
                try:
                    for item in iter_entries(raw, MAX_TREE_BYTES):
                        if len(out) >= entries_left:
                            raise Capped()
                        e = item.entry()
                        e.layer = number
                        out.append(e)
                except Capped:
                    why = "capped"
                except ValueError as e:
                    why = str(e)
                return out, why
            try:
                entries, why = await scan(self.storage, digest, read)
            except Exception as e:  # noqa: BLE001 - missing bytes: say so, keep the rest
                entries, why = [], f"layer {number} unavailable: {e}"
            apply_layer(merged, entries)
            budget_entries -= len(entries)
            if why == "capped" or budget_entries <= 0:
                partial = f"stopped at layer {number}: the tree is larger than this page reads at once"
                break
            if why:
                partial = f"layer {number}: {why}"
        return Tree(sorted(merged.values(), key=lambda e: e.path), partial)

    def _keep(self, digest: str, tree: Tree) -> None:
        self._trees[digest] = tree
        while len(self._trees) > 1 and sum(len(t.entries) for t in self._trees.values()) > CACHE_ENTRIES:
            self._trees.popitem(last=False)


def page(tree: Tree, text: str, offset: int, limit: int) -> FileList:
    needle = text.strip()
    matches = [e for e in tree.entries if needle in e.path] if needle else tree.entries
    chosen = matches[offset:offset + limit]
    more = offset + limit < len(matches)
    return FileList(files=chosen, offset=offset, next_offset=offset + limit if more else None,
                    complete="no" if more else ("capped" if tree.partial else "yes"), problem=tree.partial)

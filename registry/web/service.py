"""The catalog's data, shaped once for both the HTML pages and the JSON API.

Every function returns plain dicts and lists of JSON types (the API serialises them as they are;
the templates read the same keys), so the pages and the API can never disagree.

Access: ``may_pull(name) -> bool`` (None means everyone may pull everything) hides
repositories the caller may not pull. With no filter, the default name order is a SQL walk of
the name index; with a filter, an aggregate sort, or a search while the snapshot is fresh, the
order comes from the in-memory ranking snapshot (registry/web/ranking.py) and the page's rows
are then read fresh by id.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable

from ..index.catalog import CatalogQueries, RepositoryRow, TagRow
from ..index.catalog_details import CatalogDetails, Headline, StorageRow, TagPageDetails, namespace_of
from .file_tree import TreeCache
from .images import ImageReader, ImageSummary
from .insight import attachment_tag_names, badge, describe
from .ranking import Ranking

log = logging.getLogger("registry.web")
Access = Callable[[str], bool] | None
REPO_SORTS = ("name", "tags", "size", "pushed")
TAG_SORTS = ("name", "pushed", "size")
PER_PAGE = 50
MAX_PER_PAGE = 100


class NotFound(Exception):
    pass


@dataclass(frozen=True)
class Paging:
    page: int
    per_page: int

    @classmethod
    def parse(cls, page: str | None, per_page: str | None, default: int = PER_PAGE) -> "Paging":
        def num(text: str | None, fallback: int) -> int:
            try:
                return int(text) if text else fallback
            except ValueError:
                return fallback
        return cls(max(1, min(num(page, 1), 1_000_000)), max(1, min(num(per_page, default), MAX_PER_PAGE)))

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def info(self, total: int) -> dict[str, int]:
        return {"page": self.page, "per_page": self.per_page, "total": total,
                "pages": max(1, math.ceil(total / self.per_page))}


def pick(value: str | None, allowed: tuple[str, ...], default: str) -> str:
    return value if value in allowed else default


def _report_storage_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("catalog storage recount failed (the previous one is served): %s", task.exception())


def _heads(rows: list[RepositoryRow]) -> dict[int, Headline]:
    return {r.id: Headline(r.headline[0], r.headline[1], None) for r in rows if r.headline}


def _repo(row: RepositoryRow) -> dict[str, Any]:
    return {"name": row.name, "tag_count": row.tag_count, "size": row.size, "last_push": row.last_push}


class CatalogService:
    def __init__(self, queries: CatalogQueries, ranking: Ranking, images: ImageReader,
                 details: CatalogDetails | None = None) -> None:
        self.queries, self.ranking, self.images = queries, ranking, images
        self.details = details or CatalogDetails(queries.db)
        self._storage: tuple[Any, list[StorageRow]] | None = None
        self._storage_task: asyncio.Task | None = None
        self.trees = TreeCache(images.storage)

    async def _described(self, rows: list[RepositoryRow]) -> list[dict[str, Any]]:
        """Repository rows with their headline tag and description card. The rows carry the
        headline and the upstream already (no query here); the summaries come from the
        digest-keyed cache."""
        cards = await self._cards(_heads(rows), {r.id: r.name for r in rows})
        return [{**_repo(r), "headline_tag": r.headline[0] if r.headline else None,
                 "description": cards.get(r.id) or describe(None), "upstream": r.upstream}
                for r in rows]

    async def _cards(self, heads: dict[int, Headline], names: dict[int, str]) -> dict[int, dict[str, Any]]:
        ids = list(heads)
        found = await asyncio.gather(*(self.images.summary(names[i], heads[i].digest, heads[i].media_type)
                                       for i in ids))
        summaries = dict(zip(ids, found))
        children = {}
        for rid, s in summaries.items():  # an index describes itself, or through its first platform
            if s.kind == "index" and s.children and not describe(s)["tag"]:
                children[rid] = next((c for c in s.children if c.platform), s.children[0])
        kids = dict(zip(children, await asyncio.gather(*(self.images.summary(names[i], c.digest, c.media_type)
                                                          for i, c in children.items()))))
        return {rid: describe(summaries[rid], kids.get(rid), heads[rid].tag) for rid in ids}

    # -- the repository list ------------------------------------------------------------------
    async def repositories(self, text: str, sort: str, descending: bool, paging: Paging,
                           may_pull: Access = None) -> dict[str, Any]:
        text = text.strip()[:255]
        # A substring search scans every name either way: in memory when the snapshot is fresh
        # (no write since it was taken), else with LIKE in SQL.
        snap = self.ranking.fresh() if text else None
        if sort == "name" and may_pull is None and snap is None:
            total, rows = await self.queries.repositories_by_name(text, paging.offset, paging.per_page, descending)
        else:
            snap = snap or await self.ranking.get()
            order = snap.order(sort)
            if descending:
                order = order[::-1]
            needle = text.lower()
            if needle or may_pull is not None:
                order = [i for i in order
                         if needle in snap.rows[i][1] and (may_pull is None or may_pull(snap.rows[i][1]))]
            total = len(order)
            page = order[paging.offset:paging.offset + paging.per_page]
            rows = await self.queries.repositories_by_id([snap.rows[i][0] for i in page])
        return {"query": text, "sort": sort, "order": "desc" if descending else "asc", **paging.info(total),
                "repositories": await self._described(rows)}

    async def stats(self, may_pull: Access = None) -> dict[str, Any]:
        snap = await self.ranking.get_soon() if may_pull is None else await self.ranking.get()
        if snap is None:  # the first ranking is still being built (a large registry just started)
            repos, tags = await self.queries.counts()
            return {"repositories": repos, "tags": tags, "blobs": None, "stored_bytes": None, "saved_bytes": None}
        s = snap.stats
        if may_pull is not None:  # totals over what the caller may see (blob totals stay global)
            visible = [r for r in snap.rows if may_pull(r[1])]
            return {"repositories": len(visible), "tags": sum(r[2] for r in visible), "blobs": None,
                    "stored_bytes": None, "saved_bytes": None}
        return {"repositories": s.repositories, "tags": s.tags, "blobs": s.blobs,
                "stored_bytes": s.stored_bytes, "saved_bytes": s.saved_bytes}

    async def repository_storage(self, name: str) -> dict[str, Any]:
        repo = await self.queries.repository(name)
        if repo is None:
            raise NotFound(name)
        stored = await self.details.repository_storage(repo.id, repo.name)
        return {"name": name, "repositories": 1, "unique_bytes": stored.unique_bytes,
                "shared_bytes": stored.shared_bytes}

    async def namespace_storage(self, may_pull: Access = None) -> dict[str, Any]:
        """Unique and shared bytes per namespace. One pass over every link (seconds at 20k
        repositories), so it is kept with the ranking snapshot it was computed after and, when
        that snapshot is replaced (a write, or max_age), recomputed in the background while the
        previous answer is served; only the very first request waits."""
        snap = await self.ranking.get()
        if self._storage is None:
            await self._refresh_storage(snap)
        elif self._storage[0] is not snap and (self._storage_task is None or self._storage_task.done()):
            self._storage_task = asyncio.create_task(self._refresh_storage(snap))
            self._storage_task.add_done_callback(_report_storage_failure)
        rows = self._storage[1]  # type: ignore[index]
        if may_pull is not None:  # only namespaces with a repository the caller may pull, counted so
            visible: dict[str, int] = {}
            for r in snap.rows:
                if may_pull(r[1]):
                    ns = namespace_of(r[1])
                    visible[ns] = visible.get(ns, 0) + 1
            rows = [StorageRow(r.name, visible[r.name], r.unique_bytes, r.shared_bytes) for r in rows if r.name in visible]
        return {"namespaces": [{"name": r.name, "repositories": r.repositories, "unique_bytes": r.unique_bytes,
                                "shared_bytes": r.shared_bytes} for r in rows]}

    async def _refresh_storage(self, snap: Any) -> None:
        self._storage = (snap, await self.details.namespace_storage())

    async def close(self) -> None:
        """Stop background work (a storage recount) before the index closes."""
        task, self._storage_task = self._storage_task, None
        if task is not None and not task.done():
            task.cancel()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):  # shutting down
                await task

    async def search(self, text: str, paging: Paging, may_pull: Access = None) -> dict[str, Any]:
        """The Docker Hub v1 search shape that `docker search` reads."""
        listing = await self.repositories(text, "name", False, paging, may_pull)
        return {
            "num_results": listing["total"], "num_pages": listing["pages"], "page": paging.page,
            "page_size": paging.per_page, "query": listing["query"],
            "results": [{"name": r["name"], "description": r["description"]["description"] or f"{r['tag_count']} tags",
                         "star_count": 0,
                         "is_official": False, "is_automated": False, "is_trusted": False}
                        for r in listing["repositories"]],
        }

    # -- one repository -----------------------------------------------------------------------
    async def repository(self, name: str, text: str, sort: str, descending: bool, paging: Paging) -> dict[str, Any]:
        found = await self.queries.repository_tags(name, text.strip()[:128], sort, descending, paging.offset,
                                                   paging.per_page)
        if found is None:
            raise NotFound(name)
        repo, total, tags = found
        digests = sorted({t.digest for t in tags})
        scheme = {n: (d, what) for d in digests for n, what in attachment_tag_names(d).items()}
        summaries, more, cards = await asyncio.gather(  # side by side: storage and an index read
            self.images.summaries(name, [(t.digest, t.media_type) for t in tags]),
            self.details.tag_page(repo.id, repo.name, digests, [t.name for t in tags] + digests, sorted(scheme)),
            self._cards(_heads([repo]), {repo.id: name}))
        described = {**_repo(repo), "headline_tag": repo.headline[0] if repo.headline else None,
                     "description": cards.get(repo.id) or describe(None),
                     "storage": {"unique_bytes": more.storage.unique_bytes, "shared_bytes": more.storage.shared_bytes},
                     "upstream": repo.upstream}
        badges = _badges(more, scheme)
        return {"repository": described, "query": text.strip()[:128], "sort": sort,
                "order": "desc" if descending else "asc", **paging.info(total),
                "tags": [self._tag(t, summaries[t.digest], badges.get(t.digest, []), more.pulls) for t in tags]}

    @staticmethod
    def _tag(t: TagRow, s: ImageSummary, badges: list[dict[str, Any]], pulls: dict[str, float]) -> dict[str, Any]:
        pulled = [p for p in (pulls.get(t.name), pulls.get(t.digest)) if p is not None]
        return {"name": t.name, "digest": t.digest, "media_type": t.media_type, "kind": s.kind,
                "artifact_type": t.artifact_type if s.kind == "artifact" else None,
                "platforms": s.platforms, "compressed_size": s.compressed_size if s.kind != "index" else None,
                "manifest_size": t.manifest_size, "created": s.created, "pushed_at": t.pushed_at,
                "last_pull": max(pulled) if pulled else None, "badges": badges}

    # -- one image ----------------------------------------------------------------------------
    async def image(self, name: str, reference: str) -> dict[str, Any]:
        found = await self.queries.image(name, reference)
        if found is None:
            raise NotFound(f"{name}@{reference}")
        info, tags, referrers = found.manifest, found.tags, found.referrers
        s = await self.images.summary(name, info.digest, info.media_type)
        ref_summaries = await self.images.summaries(name, [(r.digest, r.media_type) for r in referrers])
        return {
            "repository": name, "digest": info.digest, "media_type": info.media_type, "kind": s.kind,
            "size": info.size, "tags": tags, "pushed_at": info.created_at, "artifact_type": s.artifact_type,
            "subject": info.subject or s.subject, "annotations": s.annotations, "platform": s.platform,
            "created": s.created, "problem": s.problem, "description": describe(s, None, tags[0] if tags else None),
            "config": _config_view(s.config) if s.kind == "image" else None,
            "config_digest": s.config_digest, "config_media_type": s.config_media_type,
            "layers": [{"digest": l.digest, "media_type": l.media_type, "size": l.size, "created_by": l.created_by}
                       for l in s.layers],
            "compressed_size": s.compressed_size,
            "history": [{"created": _text(h.get("created")), "created_by": _text(h.get("created_by")),
                         "comment": _text(h.get("comment")), "empty_layer": bool(h.get("empty_layer"))}
                        for h in s.history],
            "manifests": [{"digest": c.digest, "media_type": c.media_type, "size": c.size, "platform": c.platform,
                           "artifact_type": c.artifact_type} for c in s.children],
            "referrers": [{"digest": r.digest, "media_type": r.media_type, "size": r.size,
                           "artifact_type": r.artifact_type or ref_summaries[r.digest].artifact_type,
                           "annotations": ref_summaries[r.digest].annotations, "pushed_at": r.created_at,
                           "badge": badge(r.artifact_type or ref_summaries[r.digest].artifact_type, r.media_type)}
                          for r in referrers],
        }


def _badges(more: TagPageDetails, scheme: dict[str, tuple[str, tuple[str, str]]]) -> dict[str, list[dict[str, Any]]]:
    """Signatures, SBOMs and attestations attached to the page's manifests: through the
    referrers API (``subject``) and cosign's older tag scheme (``sha256-HEX.sig``)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for a in more.attached:
        b = badge(a.artifact_type, a.media_type)
        if b is not None:
            out.setdefault(a.subject, []).append({**b, "digest": a.digest, "artifact_type": a.artifact_type})
    for name, target in more.scheme_tags.items():
        subject, (kind, fmt) = scheme[name]
        out.setdefault(subject, []).append({"kind": kind, "format": fmt, "digest": target, "artifact_type": None,
                                            "tag": name})
    return out


def _text(value: Any) -> str | None:
    """A config field meant to be a string, whatever the pushed JSON holds there."""
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _config_view(cfg: dict[str, Any]) -> dict[str, Any]:
    """The runtime settings people look for, with types checked (the config is user input)."""
    def strings(value: Any) -> list[str]:
        if isinstance(value, str):
            return [value]
        return [str(v) for v in value] if isinstance(value, list) else []

    def keys(value: Any) -> list[str]:
        return sorted(str(k) for k in value) if isinstance(value, dict) else []

    labels = cfg.get("Labels")
    return {
        "entrypoint": strings(cfg.get("Entrypoint")), "cmd": strings(cfg.get("Cmd")), "env": strings(cfg.get("Env")),
        "working_dir": str(cfg.get("WorkingDir") or ""), "user": str(cfg.get("User") or ""),
        "exposed_ports": keys(cfg.get("ExposedPorts")), "volumes": keys(cfg.get("Volumes")),
        "labels": {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
        "stop_signal": str(cfg.get("StopSignal") or ""),
    }

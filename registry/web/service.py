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

import math
from dataclasses import dataclass
from typing import Any, Callable

from ..index.catalog import CatalogQueries, RepositoryRow, TagRow
from .images import ImageReader, ImageSummary
from .ranking import Ranking

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


def _repo(row: RepositoryRow) -> dict[str, Any]:
    return {"name": row.name, "tag_count": row.tag_count, "size": row.size, "last_push": row.last_push}


class CatalogService:
    def __init__(self, queries: CatalogQueries, ranking: Ranking, images: ImageReader) -> None:
        self.queries, self.ranking, self.images = queries, ranking, images

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
                "repositories": [_repo(r) for r in rows]}

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

    async def search(self, text: str, paging: Paging, may_pull: Access = None) -> dict[str, Any]:
        """The Docker Hub v1 search shape that `docker search` reads."""
        listing = await self.repositories(text, "name", False, paging, may_pull)
        return {
            "num_results": listing["total"], "num_pages": listing["pages"], "page": paging.page,
            "page_size": paging.per_page, "query": listing["query"],
            "results": [{"name": r["name"], "description": f"{r['tag_count']} tags", "star_count": 0,
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
        summaries = await self.images.summaries(name, [(t.digest, t.media_type) for t in tags])
        return {"repository": _repo(repo), "query": text.strip()[:128], "sort": sort,
                "order": "desc" if descending else "asc", **paging.info(total),
                "tags": [self._tag(t, summaries[t.digest]) for t in tags]}

    @staticmethod
    def _tag(t: TagRow, s: ImageSummary) -> dict[str, Any]:
        return {"name": t.name, "digest": t.digest, "media_type": t.media_type, "kind": s.kind,
                "artifact_type": t.artifact_type if s.kind == "artifact" else None,
                "platforms": s.platforms, "compressed_size": s.compressed_size if s.kind != "index" else None,
                "manifest_size": t.manifest_size, "created": s.created, "pushed_at": t.pushed_at}

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
            "created": s.created, "problem": s.problem,
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
                           "annotations": ref_summaries[r.digest].annotations, "pushed_at": r.created_at}
                          for r in referrers],
        }


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

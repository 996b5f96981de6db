"""Read queries for the catalog browser: search, sort, paginate, per-page aggregates, stats.

Everything here is read-only and shaped so that a page costs a few index-backed statements,
whatever the size of the registry (20,000 repositories / 100,000 tags is the yardstick):

- the repository list in name order is one LIMIT/OFFSET walk of the ``repositories.name``
  unique index (a LIKE filter scans names only, never tags);
- the numbers shown on a page (tag count, size, last push) are computed for that page's
  repositories only, in one statement of correlated subqueries (no N+1, no whole-table join);
- sorting by an aggregate needs the aggregate of every repository: ``repository_ranking``
  computes it in three grouped statements, and the web layer keeps the result as a snapshot
  it refreshes after writes (see registry/web/ranking.py).

"Size" of a repository is the sum of the distinct blobs it can serve (its repository_blobs
links: configs and layers) plus its manifests, i.e. what a full mirror of it would download.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, case, func, select

from .database import Database
from .models import Blob, Manifest, Repository, RepositoryBlob, Tag
from .proxy_models import ProxyRepository

TAG_SORTS = ("name", "pushed", "size")


@dataclass(frozen=True, slots=True)
class RepositoryRow:
    id: int
    name: str
    tag_count: int
    size: int
    last_push: float | None  # newest tag change, else the repository's creation
    headline: tuple[str, str] | None = None  # (tag, digest) a pull command names, see headline_of
    upstream: str | None = None  # the upstream it is a cached copy of (registry.proxy)


@dataclass(frozen=True, slots=True)
class TagRow:
    name: str
    digest: str
    media_type: str
    manifest_size: int
    artifact_type: str | None
    pushed_at: float


@dataclass(frozen=True, slots=True)
class ManifestInfo:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    subject: str | None
    annotations: dict[str, Any] | None
    created_at: float


@dataclass(frozen=True, slots=True)
class ImageRows:
    manifest: ManifestInfo
    tags: list[str]
    referrers: list[ManifestInfo]


@dataclass(frozen=True, slots=True)
class Stats:
    repositories: int
    tags: int
    blobs: int
    stored_bytes: int
    linked_bytes: int  # sum over repositories of what each one holds

    @property
    def saved_bytes(self) -> int:
        """What deduplication saves: bytes every repository would hold alone, minus stored."""
        return max(0, self.linked_bytes - self.stored_bytes)


def like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _name_filter(stmt, text: str | None):
    if text:
        stmt = stmt.where(Repository.name.like(like_pattern(text), escape="\\"))
    return stmt


def headline_of(column):
    """The headline tag's ``column`` of the correlated repository: ``latest`` if present, else
    the most recently pushed tag that is not a cosign ``sha256-...`` attachment tag."""
    preferred = case((Tag.name == "latest", 0), else_=1)
    attachment = case((Tag.name.like("sha256-%"), 1), else_=0)
    return (select(column).where(Tag.repository_id == Repository.id)
            .order_by(preferred, attachment, Tag.updated_at.desc(), Tag.name).limit(1)
            .correlate(Repository).scalar_subquery())


def _page_rows_stmt():
    """One statement for a page's rows (ids in :ids): correlated subqueries, so each number is
    an index range scan of that repository's rows (PostgreSQL would otherwise hash-join whole
    tables); the headline tag and the upstream ride along, so a page needs no other query."""
    rid = Repository.id
    tag_count = select(func.count()).where(Tag.repository_id == rid).correlate(Repository).scalar_subquery()
    last_tag = select(func.max(Tag.updated_at)).where(Tag.repository_id == rid).correlate(Repository).scalar_subquery()
    blob_bytes = (select(func.coalesce(func.sum(Blob.size), 0))
                  .select_from(RepositoryBlob).join(Blob, Blob.digest == RepositoryBlob.digest)
                  .where(RepositoryBlob.repository_id == rid).correlate(Repository).scalar_subquery())
    manifest_bytes = (select(func.coalesce(func.sum(Manifest.size), 0))
                      .where(Manifest.repository_id == rid).correlate(Repository).scalar_subquery())
    upstream = (select(ProxyRepository.upstream).where(ProxyRepository.repository_id == rid)
                .correlate(Repository).scalar_subquery())
    return select(rid, Repository.created_at, tag_count, last_tag, blob_bytes, manifest_bytes,
                  headline_of(Tag.name), headline_of(Tag.manifest_digest), upstream
                  ).where(rid.in_(bindparam("ids", expanding=True)))


_PAGE_ROWS = _page_rows_stmt()  # built once: building it cost more than running it


def _rows(conn: Connection, repos: list[tuple[int, str]]) -> list[RepositoryRow]:
    """Rows for (id, name) pairs, in the order given, with their numbers. Fetched here by id,
    so the paging statement before reads the name index alone (a covering scan)."""
    ids = [r[0] for r in repos]
    if not ids:
        return []
    found = {r[0]: r for r in conn.execute(_PAGE_ROWS, {"ids": ids}).all()}
    out = []
    for rid, name in repos:
        _, created, count, updated, blob_bytes, manifest_bytes, head_tag, head_digest, upstream = found[rid]
        out.append(RepositoryRow(rid, name, int(count or 0), int(blob_bytes or 0) + int(manifest_bytes or 0),
                                 updated if updated is not None else created,
                                 (head_tag, head_digest) if head_tag is not None else None, upstream))
    return out


class CatalogQueries:
    """The catalog's queries on an index database (``Index.db``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def count_repositories(self, text: str | None = None) -> int:
        stmt = _name_filter(select(func.count()).select_from(Repository), text)
        return await self.db.read(lambda conn: int(conn.execute(stmt).scalar_one()))

    async def repositories_by_name(self, text: str | None, offset: int, limit: int,
                                   descending: bool = False) -> tuple[int, list[RepositoryRow]]:
        """(matching count, one page in name order); the unique index on name serves ORDER BY
        ... LIMIT, and everything runs in one round trip to the database."""
        order = Repository.name.desc() if descending else Repository.name
        count = _name_filter(select(func.count()).select_from(Repository), text)
        stmt = _name_filter(select(Repository.id, Repository.name), text)
        stmt = stmt.order_by(order).offset(offset).limit(limit)

        def q(conn: Connection) -> tuple[int, list[RepositoryRow]]:
            total = int(conn.execute(count).scalar_one())
            return total, _rows(conn, [tuple(r) for r in conn.execute(stmt).all()])

        return await self.db.read(q)

    async def repositories_by_id(self, ids: list[int]) -> list[RepositoryRow]:
        """Rows for the given ids, in the order given (for pages ordered by a ranking)."""
        if not ids:
            return []
        stmt = select(Repository.id, Repository.name).where(Repository.id.in_(ids))

        def q(conn: Connection) -> list[RepositoryRow]:
            found = {r[0]: tuple(r) for r in conn.execute(stmt).all()}
            return _rows(conn, [found[i] for i in ids if i in found])

        return await self.db.read(q)

    async def repository(self, name: str) -> RepositoryRow | None:
        stmt = select(Repository.id, Repository.name).where(Repository.name == name)

        def q(conn: Connection) -> RepositoryRow | None:
            row = conn.execute(stmt).first()
            return _rows(conn, [tuple(row)])[0] if row else None

        return await self.db.read(q)

    async def repository_ranking(self) -> list[tuple[int, str, int, int, float]]:
        """(id, name, tag count, size, last push) of every repository, for aggregate sorts."""

        def q(conn: Connection) -> list[tuple[int, str, int, int, float]]:
            repos = conn.execute(select(Repository.id, Repository.name, Repository.created_at)).all()
            tags = {r[0]: (r[1], r[2]) for r in conn.execute(
                select(Tag.repository_id, func.count(), func.max(Tag.updated_at)).group_by(Tag.repository_id))}
            sizes = dict(conn.execute(
                select(RepositoryBlob.repository_id, func.sum(Blob.size))
                .join(Blob, Blob.digest == RepositoryBlob.digest)
                .group_by(RepositoryBlob.repository_id)).all())
            for rid, s in conn.execute(select(Manifest.repository_id, func.sum(Manifest.size))
                                       .group_by(Manifest.repository_id)):
                sizes[rid] = int(sizes.get(rid) or 0) + int(s or 0)
            out = []
            for rid, name, created in repos:
                count, updated = tags.get(rid, (0, None))
                out.append((rid, name, int(count), int(sizes.get(rid) or 0), updated if updated is not None else created))
            return out

        return await self.db.read(q)

    # -- one repository -----------------------------------------------------------------------
    def _tags_stmt(self, repository_id: int, text: str | None):
        stmt = (
            select(Tag.name, Manifest.digest, Manifest.media_type, Manifest.size, Manifest.artifact_type, Tag.updated_at)
            .select_from(Tag)
            .join(Manifest, (Manifest.repository_id == Tag.repository_id) & (Manifest.digest == Tag.manifest_digest))
            .where(Tag.repository_id == repository_id)
        )
        if text:
            stmt = stmt.where(Tag.name.like(like_pattern(text), escape="\\"))
        return stmt

    async def repository_tags(self, name: str, text: str | None, sort: str, descending: bool,
                              offset: int, limit: int) -> tuple[RepositoryRow, int, list[TagRow]] | None:
        """(the repository, matching tag count, one page of tags) in one round trip; None when
        there is no such repository."""
        if sort not in TAG_SORTS:
            raise ValueError(f"sort: one of {TAG_SORTS}")
        key = {"name": Tag.name, "pushed": Tag.updated_at, "size": Manifest.size}[sort]
        find = select(Repository.id, Repository.name).where(Repository.name == name)

        def q(conn: Connection) -> tuple[RepositoryRow, int, list[TagRow]] | None:
            found = conn.execute(find).first()
            if found is None:
                return None
            repo = _rows(conn, [tuple(found)])[0]
            stmt = self._tags_stmt(repo.id, text)
            total = int(conn.execute(select(func.count()).select_from(stmt.subquery())).scalar_one())
            page = stmt.order_by(key.desc() if descending else key, Tag.name).offset(offset).limit(limit)
            return repo, total, [TagRow(*r) for r in conn.execute(page).all()]

        return await self.db.read(q)

    async def image(self, name: str, reference: str) -> ImageRows | None:
        """A manifest of the repository by digest or tag, with its tags and its referrers, in
        one round trip; None when the repository, tag or manifest is unknown."""
        columns = (Manifest.digest, Manifest.media_type, Manifest.size, Manifest.artifact_type,
                   Manifest.subject_digest, Manifest.annotations, Manifest.created_at)

        def q(conn: Connection) -> ImageRows | None:
            rid = conn.execute(select(Repository.id).where(Repository.name == name)).scalar_one_or_none()
            if rid is None:
                return None
            digest = reference
            if ":" not in reference:
                digest = conn.execute(select(Tag.manifest_digest).where(
                    Tag.repository_id == rid, Tag.name == reference)).scalar_one_or_none()
                if digest is None:
                    return None
            row = conn.execute(select(*columns).where(Manifest.repository_id == rid, Manifest.digest == digest)).first()
            if row is None:
                return None
            tags = list(conn.execute(select(Tag.name).where(
                Tag.repository_id == rid, Tag.manifest_digest == digest).order_by(Tag.name)).scalars())
            referrers = [ManifestInfo(*r) for r in conn.execute(select(*columns).where(
                Manifest.repository_id == rid, Manifest.subject_digest == digest
            ).order_by(Manifest.created_at, Manifest.digest)).all()]
            return ImageRows(ManifestInfo(*row), tags, referrers)

        return await self.db.read(q)

    async def counts(self) -> tuple[int, int]:
        """(repositories, tags): two index-only counts, for before the ranking exists."""
        def q(conn: Connection) -> tuple[int, int]:
            repos = conn.execute(select(func.count()).select_from(Repository)).scalar_one()
            tags = conn.execute(select(func.count()).select_from(Tag)).scalar_one()
            return int(repos), int(tags)

        return await self.db.read(q)

    async def blob_totals(self) -> tuple[int, int]:
        """(unique blobs, stored bytes)."""
        stmt = select(func.count(), func.coalesce(func.sum(Blob.size), 0)).select_from(Blob)
        return await self.db.read(lambda conn: tuple(int(v) for v in conn.execute(stmt).one()))

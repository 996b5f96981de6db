"""Read queries for the catalog browser: search, sort, paginate, per-page aggregates, stats.

Everything here is read-only and shaped so that a page costs a few index-backed statements,
whatever the size of the registry (20,000 repositories / 100,000 tags is the yardstick):

- the repository list in name order is one LIMIT/OFFSET walk of the ``repositories.name``
  unique index (a LIKE filter scans names only, never tags);
- the numbers shown on a page (tag count, size, last push) are computed for that page's
  repositories only, in two grouped statements keyed by ``repository_id`` (no N+1);
- sorting by an aggregate needs the aggregate of every repository: ``repository_ranking``
  computes it in three grouped statements, and the web layer keeps the result as a snapshot
  it refreshes after writes (see registry/web/ranking.py).

"Size" of a repository is the sum of the distinct blobs it can serve (its repository_blobs
links: configs and layers) plus its manifests, i.e. what a full mirror of it would download.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from sqlalchemy import Connection, func, select

from .database import Database
from .models import Blob, Manifest, Repository, RepositoryBlob, Tag

TAG_SORTS = ("name", "pushed", "size")


@dataclass(frozen=True, slots=True)
class RepositoryRow:
    id: int
    name: str
    tag_count: int
    size: int
    last_push: float | None  # newest tag change, else the repository's creation


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


def _aggregates(conn: Connection, ids: list[int]) -> dict[int, tuple[int, int, float | None]]:
    """(tag count, size, last tag change) for the given repositories, in two statements."""
    if not ids:
        return {}
    tags = conn.execute(
        select(Tag.repository_id, func.count(), func.max(Tag.updated_at))
        .where(Tag.repository_id.in_(ids))
        .group_by(Tag.repository_id)
    ).all()
    sizes = conn.execute(
        select(RepositoryBlob.repository_id, func.sum(Blob.size))
        .join(Blob, Blob.digest == RepositoryBlob.digest)
        .where(RepositoryBlob.repository_id.in_(ids))
        .group_by(RepositoryBlob.repository_id)
    ).all()
    manifests = conn.execute(
        select(Manifest.repository_id, func.sum(Manifest.size))
        .where(Manifest.repository_id.in_(ids))
        .group_by(Manifest.repository_id)
    ).all()
    size_of = {rid: int(s or 0) for rid, s in sizes}
    for rid, s in manifests:
        size_of[rid] = size_of.get(rid, 0) + int(s or 0)
    out = {rid: (0, size_of.get(rid, 0), None) for rid in ids}
    for rid, count, updated in tags:
        out[rid] = (int(count), size_of.get(rid, 0), updated)
    return out


def _rows(conn: Connection, repos: list[tuple[int, str]]) -> list[RepositoryRow]:
    """Rows for (id, name) pairs, in the order given. Creation times are fetched here, by id,
    so the paging statement before reads the name index alone (a covering scan)."""
    ids = [r[0] for r in repos]
    if not ids:
        return []
    created = dict(conn.execute(select(Repository.id, Repository.created_at).where(Repository.id.in_(ids))).all())
    agg = _aggregates(conn, ids)
    out = []
    for rid, name in repos:
        count, size, updated = agg[rid]
        out.append(RepositoryRow(rid, name, count, size, updated if updated is not None else created.get(rid)))
    return out


class CatalogQueries:
    """The catalog's queries on an index database (``Index.db``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def count_repositories(self, text: str | None = None) -> int:
        stmt = _name_filter(select(func.count()).select_from(Repository), text)
        return await self.db.read(lambda conn: int(conn.execute(stmt).scalar_one()))

    async def repositories_by_name(self, text: str | None, offset: int, limit: int,
                                   descending: bool = False) -> list[RepositoryRow]:
        """One page in name order (the unique index on name serves ORDER BY ... LIMIT)."""
        order = Repository.name.desc() if descending else Repository.name
        stmt = _name_filter(select(Repository.id, Repository.name), text)
        stmt = stmt.order_by(order).offset(offset).limit(limit)
        return await self.db.read(lambda conn: _rows(conn, [tuple(r) for r in conn.execute(stmt).all()]))

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

    async def tags(self, repository_id: int, text: str | None, sort: str, descending: bool,
                   offset: int, limit: int) -> tuple[int, list[TagRow]]:
        """(matching tag count, one page of tags) of a repository."""
        if sort not in TAG_SORTS:
            raise ValueError(f"sort: one of {TAG_SORTS}")
        key = {"name": Tag.name, "pushed": Tag.updated_at, "size": Manifest.size}[sort]
        stmt = self._tags_stmt(repository_id, text)
        count_stmt = select(func.count()).select_from(stmt.subquery())
        stmt = stmt.order_by(key.desc() if descending else key, Tag.name).offset(offset).limit(limit)

        def q(conn: Connection) -> tuple[int, list[TagRow]]:
            total = int(conn.execute(count_stmt).scalar_one())
            return total, [TagRow(*r) for r in conn.execute(stmt).all()]

        return await self.db.read(q)

    async def manifest(self, repository_id: int, digest: str) -> ManifestInfo | None:
        stmt = select(Manifest.digest, Manifest.media_type, Manifest.size, Manifest.artifact_type,
                      Manifest.subject_digest, Manifest.annotations, Manifest.created_at).where(
            Manifest.repository_id == repository_id, Manifest.digest == digest)

        def q(conn: Connection) -> ManifestInfo | None:
            row = conn.execute(stmt).first()
            return ManifestInfo(*row) if row else None

        return await self.db.read(q)

    async def tag_digest(self, repository_id: int, tag: str) -> str | None:
        stmt = select(Tag.manifest_digest).where(Tag.repository_id == repository_id, Tag.name == tag)
        return await self.db.read(lambda conn: conn.execute(stmt).scalar_one_or_none())

    async def tags_of(self, repository_id: int, digest: str) -> list[str]:
        stmt = select(Tag.name).where(Tag.repository_id == repository_id, Tag.manifest_digest == digest).order_by(Tag.name)
        return await self.db.read(lambda conn: list(conn.execute(stmt).scalars()))

    async def referrers(self, repository_id: int, digest: str) -> list[ManifestInfo]:
        """Manifests of the repository whose subject is ``digest`` (signatures, SBOMs...)."""
        stmt = select(Manifest.digest, Manifest.media_type, Manifest.size, Manifest.artifact_type,
                      Manifest.subject_digest, Manifest.annotations, Manifest.created_at).where(
            Manifest.repository_id == repository_id, Manifest.subject_digest == digest
        ).order_by(Manifest.created_at, Manifest.digest)
        return await self.db.read(lambda conn: [ManifestInfo(*r) for r in conn.execute(stmt).all()])

    async def blob_sizes(self, digests: Iterable[str]) -> dict[str, int]:
        wanted = sorted(set(digests))
        if not wanted:
            return {}
        stmt = select(Blob.digest, Blob.size).where(Blob.digest.in_(wanted))
        return await self.db.read(lambda conn: {d: int(s) for d, s in conn.execute(stmt).all()})

    # -- the whole registry -------------------------------------------------------------------
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

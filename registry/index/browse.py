"""Read-only queries for people browsing the registry (the HTML catalog, admin commands)."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from .database import Database
from .models import Blob, Manifest, ManifestReference, Repository, Tag


@dataclass(frozen=True, slots=True)
class RepositorySummary:
    name: str
    tag_count: int
    manifest_count: int
    updated_at: float | None  # last tag change, else creation


@dataclass(frozen=True, slots=True)
class TagDetail:
    name: str
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    updated_at: float


@dataclass(frozen=True, slots=True)
class Reference:
    digest: str
    kind: str  # "blob" or "manifest"
    size: int | None


class BrowseQueries:
    db: Database

    async def repository_summaries(self, n: int = 100, last: str | None = None, contains: str | None = None) -> list[RepositorySummary]:
        """Repositories in lexical order after ``last``, optionally whose name contains a text."""
        tags = (
            select(Tag.repository_id, func.count().label("n"), func.max(Tag.updated_at).label("updated"))
            .group_by(Tag.repository_id)
            .subquery()
        )
        manifests = select(Manifest.repository_id, func.count().label("n")).group_by(Manifest.repository_id).subquery()
        q = (
            select(
                Repository.name,
                func.coalesce(tags.c.n, 0),
                func.coalesce(manifests.c.n, 0),
                func.coalesce(tags.c.updated, Repository.created_at),
            )
            .outerjoin(tags, tags.c.repository_id == Repository.id)
            .outerjoin(manifests, manifests.c.repository_id == Repository.id)
            .order_by(Repository.name)
            .limit(n)
        )
        if last:
            q = q.where(Repository.name > last)
        if contains:
            escaped = contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            q = q.where(Repository.name.like(f"%{escaped}%", escape="\\"))
        return await self.db.read(lambda conn: [RepositorySummary(*row) for row in conn.execute(q).all()])

    async def tag_details(self, repository: str, n: int | None = None, last: str | None = None) -> list[TagDetail]:
        q = (
            select(Tag.name, Manifest.digest, Manifest.media_type, Manifest.size, Manifest.artifact_type, Tag.updated_at)
            .select_from(Tag)
            .join(Repository, Repository.id == Tag.repository_id)
            .join(Manifest, (Manifest.repository_id == Tag.repository_id) & (Manifest.digest == Tag.manifest_digest))
            .where(Repository.name == repository)
            .order_by(Tag.name)
            .limit(n)
        )
        if last:
            q = q.where(Tag.name > last)
        return await self.db.read(lambda conn: [TagDetail(*row) for row in conn.execute(q).all()])

    async def manifest_references(self, repository: str, digest: str) -> list[Reference]:
        """What a manifest in the repository points at, with blob sizes where known."""
        q = (
            select(ManifestReference.digest, ManifestReference.kind, Blob.size)
            .select_from(ManifestReference)
            .join(Manifest, Manifest.id == ManifestReference.manifest_id)
            .join(Repository, Repository.id == Manifest.repository_id)
            .outerjoin(Blob, Blob.digest == ManifestReference.digest)
            .where(Repository.name == repository, Manifest.digest == digest)
            .order_by(ManifestReference.kind, ManifestReference.digest)
        )
        return await self.db.read(lambda conn: [Reference(*row) for row in conn.execute(q).all()])

    async def tags_of(self, repository: str, digest: str) -> list[str]:
        q = (
            select(Tag.name)
            .join(Repository, Repository.id == Tag.repository_id)
            .where(Repository.name == repository, Tag.manifest_digest == digest)
            .order_by(Tag.name)
        )
        return await self.db.read(lambda conn: list(conn.execute(q).scalars()))

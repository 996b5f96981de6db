"""Index queries for repositories, blob links, upload sessions, tags and the catalog.

Every write is an upsert (INSERT .. ON CONFLICT) so the same push from many clients at once
succeeds for all of them and leaves one row. Lists are keyset-paginated on a primary-key or
unique index (``name > :last ORDER BY name LIMIT :n``), which stays fast at any size.
Manifest queries are in manifests.py; ``Index`` combines both.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .database import Database
from .models import Blob, Manifest, Repository, RepositoryBlob, Tag, UploadSession, now


@dataclass(frozen=True, slots=True)
class UploadRow:
    id: str
    repository: str
    created_at: float
    updated_at: float


# The pull path's queries are built once: building a statement costs as much as running it.
_RESOLVE_TAG = (
    select(Manifest.digest, Manifest.media_type, Manifest.size)
    .select_from(Tag)
    .join(Repository, Repository.id == Tag.repository_id)
    .join(Manifest, (Manifest.repository_id == Tag.repository_id) & (Manifest.digest == Tag.manifest_digest))
    .where(Repository.name == bindparam("repository"), Tag.name == bindparam("tag"))
)
_BLOB_SIZE = (
    select(Blob.size)
    .join(RepositoryBlob, RepositoryBlob.digest == Blob.digest)
    .join(Repository, Repository.id == RepositoryBlob.repository_id)
    .where(Repository.name == bindparam("repository"), Blob.digest == bindparam("digest"))
)


class RepositoryQueries:
    db: Database

    # -- repositories -------------------------------------------------------------------------
    async def _ensure_repository(self, conn: AsyncConnection, name: str) -> int:
        await conn.execute(
            self.db.insert(Repository).values(name=name, created_at=now()).on_conflict_do_nothing(index_elements=["name"])
        )
        return (await conn.execute(select(Repository.id).where(Repository.name == name))).scalar_one()

    @staticmethod
    async def _repository_id(conn: AsyncConnection, name: str) -> int | None:
        return (await conn.execute(select(Repository.id).where(Repository.name == name))).scalar_one_or_none()

    async def repository_exists(self, name: str) -> bool:
        async with self.db.read() as conn:
            return await self._repository_id(conn, name) is not None

    async def list_repositories(self, n: int, last: str | None = None) -> list[str]:
        q = select(Repository.name).order_by(Repository.name).limit(n)
        if last:
            q = q.where(Repository.name > last)
        async with self.db.read() as conn:
            return list((await conn.execute(q)).scalars())

    # -- blobs --------------------------------------------------------------------------------
    async def link_blob(self, repository: str, digest: str, size: int) -> None:
        """Record stored bytes and make them visible in ``repository`` (after the bytes exist)."""

        async def tx(conn: AsyncConnection) -> None:
            repo_id = await self._ensure_repository(conn, repository)
            await conn.execute(
                self.db.insert(Blob).values(digest=digest, size=size, created_at=now()).on_conflict_do_nothing(
                    index_elements=["digest"]
                )
            )
            await conn.execute(
                self.db.insert(RepositoryBlob)
                .values(repository_id=repo_id, digest=digest, created_at=now())
                .on_conflict_do_nothing(index_elements=["repository_id", "digest"])
            )

        await self.db.write(tx)

    async def blob_size(self, repository: str, digest: str) -> int | None:
        """Size of a blob visible in the repository, else None."""
        row = await self.db.first(_BLOB_SIZE, {"repository": repository, "digest": digest})
        return row[0] if row else None

    async def unlink_blob(self, repository: str, digest: str) -> bool:
        async def tx(conn: AsyncConnection) -> bool:
            repo_id = await self._repository_id(conn, repository)
            if repo_id is None:
                return False
            res = await conn.execute(
                delete(RepositoryBlob).where(RepositoryBlob.repository_id == repo_id, RepositoryBlob.digest == digest)
            )
            return res.rowcount > 0

        return await self.db.write(tx)

    async def missing_blobs(self, repository: str, digests: list[str]) -> set[str]:
        """Which of ``digests`` are not visible as blobs in the repository."""
        if not digests:
            return set()
        q = (
            select(RepositoryBlob.digest)
            .join(Repository, Repository.id == RepositoryBlob.repository_id)
            .where(Repository.name == repository, RepositoryBlob.digest.in_(set(digests)))
        )
        async with self.db.read() as conn:
            found = set((await conn.execute(q)).scalars())
        return set(digests) - found

    # -- upload sessions ----------------------------------------------------------------------
    async def create_upload(self, upload_id: str, repository: str) -> None:
        async def tx(conn: AsyncConnection) -> None:
            t = now()
            await conn.execute(
                self.db.insert(UploadSession).values(id=upload_id, repository=repository, created_at=t, updated_at=t)
            )

        await self.db.write(tx)

    async def get_upload(self, upload_id: str) -> UploadRow | None:
        q = select(UploadSession.id, UploadSession.repository, UploadSession.created_at, UploadSession.updated_at).where(
            UploadSession.id == upload_id
        )
        async with self.db.read() as conn:
            row = (await conn.execute(q)).first()
        return UploadRow(*row) if row else None

    async def touch_upload(self, upload_id: str) -> None:
        async def tx(conn: AsyncConnection) -> None:
            await conn.execute(update(UploadSession).where(UploadSession.id == upload_id).values(updated_at=now()))

        await self.db.write(tx)

    async def delete_upload(self, upload_id: str) -> None:
        async def tx(conn: AsyncConnection) -> None:
            await conn.execute(delete(UploadSession).where(UploadSession.id == upload_id))

        await self.db.write(tx)

    async def expired_uploads(self, idle_before: float) -> list[str]:
        q = select(UploadSession.id).where(UploadSession.updated_at < idle_before)
        async with self.db.read() as conn:
            return list((await conn.execute(q)).scalars())

    async def all_upload_ids(self) -> set[str]:
        async with self.db.read() as conn:
            return set((await conn.execute(select(UploadSession.id))).scalars())

    # -- tags ---------------------------------------------------------------------------------
    async def list_tags(self, repository: str, n: int, last: str | None = None) -> list[str] | None:
        """Tags in lexical order after ``last``; None when the repository does not exist."""
        async with self.db.read() as conn:
            repo_id = await self._repository_id(conn, repository)
            if repo_id is None:
                return None
            q = select(Tag.name).where(Tag.repository_id == repo_id).order_by(Tag.name).limit(n)
            if last:
                q = q.where(Tag.name > last)
            return list((await conn.execute(q)).scalars())

    async def tag_digests(self, repository: str) -> dict[str, str]:
        """Every tag of a repository with its manifest digest (for the catalog browser)."""
        q = (
            select(Tag.name, Tag.manifest_digest)
            .join(Repository, Repository.id == Tag.repository_id)
            .where(Repository.name == repository)
            .order_by(Tag.name)
        )
        async with self.db.read() as conn:
            return {name: digest for name, digest in (await conn.execute(q)).all()}

    async def resolve_tag(self, repository: str, tag: str) -> tuple[str, str, int] | None:
        """(digest, media type, size) of the manifest a tag points at, in one indexed query."""
        row = await self.db.first(_RESOLVE_TAG, {"repository": repository, "tag": tag})
        return (row[0], row[1], row[2]) if row else None

    async def delete_tag(self, repository: str, tag: str) -> bool:
        async def tx(conn: AsyncConnection) -> bool:
            repo_id = await self._repository_id(conn, repository)
            if repo_id is None:
                return False
            res = await conn.execute(delete(Tag).where(Tag.repository_id == repo_id, Tag.name == tag))
            return res.rowcount > 0

        return await self.db.write(tx)

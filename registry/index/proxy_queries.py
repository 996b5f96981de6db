"""Index queries of the pull-through cache (tables in proxy_models.py).

Run on the shared ``Database``; the repository row itself is created by the ordinary queries
(a cached manifest or blob is recorded by ``Index.put_manifest``/``link_blob``), these only add
the cache's own facts next to it.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, delete, exists, func, select, update

from .database import Database
from .models import Blob, Manifest, Repository, RepositoryBlob, Tag, now
from .proxy_models import ProxyRepository, ProxyTag
from .queries import repository_id


@dataclass(frozen=True, slots=True)
class CachedRepository:
    name: str
    upstream: str
    remote_name: str
    last_pulled_at: float


_ORIGIN = (
    select(ProxyRepository.upstream, ProxyRepository.remote_name)
    .join(Repository, Repository.id == ProxyRepository.repository_id)
    .where(Repository.name == bindparam("repository"))
)
_TAG_CHECKED = (
    select(ProxyTag.checked_at)
    .join(Repository, Repository.id == ProxyTag.repository_id)
    .where(Repository.name == bindparam("repository"), ProxyTag.name == bindparam("tag"))
)


class ProxyQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def mark_cached(self, repository: str, upstream: str, remote_name: str) -> None:
        """Record that ``repository`` (already created) mirrors ``remote_name`` at ``upstream``."""

        def tx(conn: Connection) -> None:
            repo_id = repository_id(conn, repository)
            if repo_id is None:
                return
            conn.execute(
                self.db.insert(ProxyRepository)
                .values(repository_id=repo_id, upstream=upstream, remote_name=remote_name, last_pulled_at=now())
                .on_conflict_do_nothing(index_elements=["repository_id"])
            )

        await self.db.write(tx)

    async def origin(self, repository: str) -> tuple[str, str] | None:
        """(upstream, remote name) of a cached repository; None for a local one."""
        row = await self.db.read(lambda conn: conn.execute(_ORIGIN, {"repository": repository}).first())
        return (row[0], row[1]) if row else None

    async def origins(self, repositories: list[str]) -> dict[str, str]:
        """repository -> upstream name, for those of ``repositories`` that are cached (the catalog)."""
        if not repositories:
            return {}
        q = (
            select(Repository.name, ProxyRepository.upstream)
            .join(ProxyRepository, ProxyRepository.repository_id == Repository.id)
            .where(Repository.name.in_(set(repositories)))
        )
        return await self.db.read(lambda conn: {name: up for name, up in conn.execute(q).all()})

    async def tag_checked_at(self, repository: str, tag: str) -> float | None:
        params = {"repository": repository, "tag": tag}
        return await self.db.read(lambda conn: conn.execute(_TAG_CHECKED, params).scalar_one_or_none())

    async def set_tag_checked(self, repository: str, tag: str, when: float | None = None) -> None:
        t = now() if when is None else when

        def tx(conn: Connection) -> None:
            repo_id = repository_id(conn, repository)
            if repo_id is None:
                return
            stmt = self.db.insert(ProxyTag).values(repository_id=repo_id, name=tag, checked_at=t)
            conn.execute(stmt.on_conflict_do_update(index_elements=["repository_id", "name"],
                                                    set_={"checked_at": stmt.excluded.checked_at}))

        await self.db.write(tx)

    async def forget_tag(self, repository: str, tag: str) -> None:
        def tx(conn: Connection) -> None:
            repo_id = repository_id(conn, repository)
            if repo_id is not None:
                conn.execute(delete(ProxyTag).where(ProxyTag.repository_id == repo_id, ProxyTag.name == tag))

        await self.db.write(tx)

    async def touch_pulled(self, repository: str, when: float | None = None) -> None:
        t = now() if when is None else when
        sub = select(Repository.id).where(Repository.name == repository).scalar_subquery()
        stmt = update(ProxyRepository).where(ProxyRepository.repository_id == sub).values(last_pulled_at=t)
        await self.db.write(lambda conn: conn.execute(stmt))

    async def cached_repositories(self, upstream: str | None = None) -> list[CachedRepository]:
        """Every cached repository, least recently pulled first (the eviction order)."""
        q = (
            select(Repository.name, ProxyRepository.upstream, ProxyRepository.remote_name, ProxyRepository.last_pulled_at)
            .join(Repository, Repository.id == ProxyRepository.repository_id)
            .order_by(ProxyRepository.last_pulled_at, Repository.name)
        )
        if upstream is not None:
            q = q.where(ProxyRepository.upstream == upstream)
        return await self.db.read(lambda conn: [CachedRepository(*row) for row in conn.execute(q).all()])

    async def sizes(self) -> dict[str, int]:
        """Bytes each cached repository holds (its linked blobs and its manifests; a blob two
        repositories share counts in both, so the total errs on the side of evicting)."""
        blobs = (
            select(Repository.name, func.sum(Blob.size))
            .join(ProxyRepository, ProxyRepository.repository_id == Repository.id)
            .join(RepositoryBlob, RepositoryBlob.repository_id == Repository.id)
            .join(Blob, Blob.digest == RepositoryBlob.digest)
            .group_by(Repository.name)
        )
        manifests = (
            select(Repository.name, func.sum(Manifest.size))
            .join(ProxyRepository, ProxyRepository.repository_id == Repository.id)
            .join(Manifest, Manifest.repository_id == Repository.id)
            .group_by(Repository.name)
        )

        def q(conn: Connection) -> dict[str, int]:
            out: dict[str, int] = {}
            for stmt in (blobs, manifests):
                for name, size in conn.execute(stmt).all():
                    out[name] = out.get(name, 0) + int(size or 0)
            return out

        return await self.db.read(q)

    async def contents(self, repository: str) -> tuple[list[str], list[str]]:
        """(manifest digests, linked blob digests) of a repository."""
        def q(conn: Connection) -> tuple[list[str], list[str]]:
            repo_id = repository_id(conn, repository)
            if repo_id is None:
                return [], []
            m = conn.execute(select(Manifest.digest).where(Manifest.repository_id == repo_id)).scalars()
            b = conn.execute(select(RepositoryBlob.digest).where(RepositoryBlob.repository_id == repo_id)).scalars()
            return list(m), list(b)

        return await self.db.read(q)

    async def drop_if_empty(self, repository: str) -> bool:
        """Remove an evicted cached repository's row once nothing is named in it any more."""
        def tx(conn: Connection) -> bool:
            repo_id = repository_id(conn, repository)
            if repo_id is None:
                return False
            held = conn.execute(select(
                exists().where(Manifest.repository_id == repo_id)
                | exists().where(RepositoryBlob.repository_id == repo_id)
                | exists().where(Tag.repository_id == repo_id)
            )).scalar()
            if held:
                return False
            conn.execute(delete(ProxyTag).where(ProxyTag.repository_id == repo_id))
            conn.execute(delete(ProxyRepository).where(ProxyRepository.repository_id == repo_id))
            conn.execute(delete(Repository).where(Repository.id == repo_id))
            return True

        return await self.db.write(tx)

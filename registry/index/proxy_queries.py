"""Index queries of the pull-through cache (tables in proxy_models.py).

Run on the shared ``Database``; the repository row itself is created by the ordinary queries
(a cached manifest or blob is recorded by ``Index.put_manifest``/``link_blob``), these only add
the cache's own facts next to it.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, and_, bindparam, delete, exists, or_, select, union, update

from .database import Database
from .models import Blob, Manifest, ManifestReference, Repository, RepositoryBlob, Tag, now
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

    async def holdings(self, namespace: str | None = None) -> tuple[dict[str, dict[str, int]], set[str]]:
        """({repository: {digest: size}}, names of the cached ones) of what repositories hold
        (linked blobs and their manifests), so that eviction counts each blob once however many
        repositories share it. ``namespace`` None: the cached repositories; else every
        repository of that namespace (its quota counts local ones too, which are never evicted)."""
        cached = select(ProxyRepository.repository_id)
        if namespace is None:
            scope = Repository.id.in_(cached)
        else:  # "ns/..." by byte order ("/" + 1 is "0"), as the quota's usage selects them
            scope = or_(Repository.name == namespace,
                        and_(Repository.name >= namespace + "/", Repository.name < namespace + "0"))
        held = union(select(RepositoryBlob.repository_id.label("rid"), RepositoryBlob.digest.label("digest")),
                     select(Manifest.repository_id.label("rid"), Manifest.digest.label("digest"))).subquery()
        stmt = (select(Repository.name, held.c.digest, Blob.size).select_from(held)
                .join(Repository, Repository.id == held.c.rid).join(Blob, Blob.digest == held.c.digest).where(scope))
        names = select(Repository.name).where(Repository.id.in_(cached), scope)

        def q(conn: Connection) -> tuple[dict[str, dict[str, int]], set[str]]:
            out: dict[str, dict[str, int]] = {}
            for name, digest, size in conn.execute(stmt):
                out.setdefault(name, {})[digest] = int(size or 0)
            return out, set(conn.execute(names).scalars())

        return await self.db.read(q)

    async def add_references(self, repository: str, parents: list[str], digest: str, kind: str) -> int:
        """Record that manifests ``parents`` of ``repository`` name ``digest`` (a child manifest
        or a blob that arrived after them); returns how many references were added."""
        def tx(conn: Connection) -> int:
            repo_id = repository_id(conn, repository)
            if repo_id is None or not parents:
                return 0
            ids = sorted(conn.execute(select(Manifest.id).where(
                Manifest.repository_id == repo_id, Manifest.digest.in_(sorted(set(parents))))).scalars())
            if not ids:
                return 0
            conn.execute(self.db.insert(ManifestReference).values(
                [{"manifest_id": i, "digest": digest, "kind": kind} for i in ids]
            ).on_conflict_do_nothing(index_elements=["manifest_id", "digest"]))
            return len(ids)

        return await self.db.write(tx)

    async def manifests_of(self, repository: str) -> list[tuple[str, str]]:
        """(digest, media type) of every manifest of ``repository``."""
        q = (select(Manifest.digest, Manifest.media_type).join(Repository, Repository.id == Manifest.repository_id)
             .where(Repository.name == repository).order_by(Manifest.id))
        return await self.db.read(lambda conn: [tuple(r) for r in conn.execute(q).all()])

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

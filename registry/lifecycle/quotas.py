"""Storage quotas per namespace (the first path component: ``team`` in ``team/web``).

Usage counts each blob once per namespace however many of its repositories hold it: the sum of
the sizes of the distinct digests linked to, or stored as manifests in, the namespace's
repositories (layers, configs and manifests). It is computed by one query when needed, so it is
exact by construction; limits live in the index (``namespace_quotas``). A push that would go
over is refused before its bytes are committed. Two pushes racing for the last bytes may both
pass the check (it is not taken under a lock): the overshoot is bounded by one blob each.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, and_, delete, func, or_, select, union

from registry.index.lifecycle_models import NamespaceQuota
from registry.index.models import Blob, Manifest, Repository, RepositoryBlob

LIMIT_TTL = 5.0  # seconds a namespace's limit is cached (``quota set`` runs in another process)


class QuotaExceeded(Exception):
    def __init__(self, namespace: str, used: int, limit: int, adding: int) -> None:
        super().__init__(f"quota exceeded: {namespace} uses {used} of {limit}")
        self.namespace, self.used, self.limit, self.adding = namespace, used, limit, adding


def namespace_of(repository: str) -> str:
    return repository.split("/", 1)[0]


def _repositories(namespace: str):
    # "name/..." by byte order: "/" + 1 is "0", so the range is the prefix, and the index serves it.
    return select(Repository.id).where(or_(Repository.name == namespace,
                                           and_(Repository.name >= namespace + "/", Repository.name < namespace + "0")))


def _digests(namespace: str):
    repos = _repositories(namespace)
    return union(select(RepositoryBlob.digest).where(RepositoryBlob.repository_id.in_(repos)),
                 select(Manifest.digest).where(Manifest.repository_id.in_(repos))).subquery()


def usage(conn: Connection, namespace: str) -> int:
    digests = _digests(namespace)
    q = select(func.coalesce(func.sum(Blob.size), 0)).where(Blob.digest.in_(select(digests.c.digest)))
    return int(conn.execute(q).scalar_one())


def holds(conn: Connection, namespace: str, digest: str) -> bool:
    digests = _digests(namespace)
    return conn.execute(select(digests.c.digest).where(digests.c.digest == digest).limit(1)).first() is not None


async def all_usage(index) -> dict[str, int]:
    def q(conn: Connection) -> dict[str, int]:
        names = {namespace_of(n) for n in conn.execute(select(Repository.name)).scalars()}
        return {ns: usage(conn, ns) for ns in sorted(names)}

    return await index.db.read(q)


@dataclass
class Quotas:
    """The limits, cached briefly; ``check`` is what the API calls before committing bytes."""

    index: object
    _limits: dict[str, tuple[float, int | None]] | None = None

    async def limit(self, namespace: str) -> int | None:
        cache = self._limits = self._limits if self._limits is not None else {}
        hit = cache.get(namespace)
        if hit is not None and time.monotonic() - hit[0] < LIMIT_TTL:
            return hit[1]
        q = select(NamespaceQuota.limit_bytes).where(NamespaceQuota.namespace == namespace)
        value = await self.index.db.read(lambda conn: conn.execute(q).scalar())  # type: ignore[attr-defined]
        cache[namespace] = (time.monotonic(), value)
        return value

    async def check(self, repository: str, digest: str | None, size: int) -> None:
        """Raise QuotaExceeded when adding ``size`` bytes (not already held) would go over."""
        namespace = namespace_of(repository)
        limit = await self.limit(namespace)
        if limit is None:
            return

        def q(conn: Connection) -> tuple[bool, int]:
            return (digest is not None and holds(conn, namespace, digest)), usage(conn, namespace)

        held, used = await self.index.db.read(q)  # type: ignore[attr-defined]
        if not held and used + size > limit:
            raise QuotaExceeded(namespace, used, limit, size)


async def set_quota(index, namespace: str, limit: int) -> None:
    """``limit`` 0 removes the quota."""

    def tx(conn: Connection) -> None:
        conn.execute(delete(NamespaceQuota).where(NamespaceQuota.namespace == namespace))
        if limit > 0:
            conn.execute(NamespaceQuota.__table__.insert().values(namespace=namespace, limit_bytes=limit,
                                                                  updated_at=time.time()))

    await index.db.write(tx)


async def list_quotas(index) -> list[tuple[str, int, int]]:
    def q(conn: Connection) -> list[tuple[str, int, int]]:
        rows = conn.execute(select(NamespaceQuota.namespace, NamespaceQuota.limit_bytes)
                            .order_by(NamespaceQuota.namespace)).all()
        return [(ns, usage(conn, ns), int(limit)) for ns, limit in rows]

    return await index.db.read(q)

"""Index queries for manifests, their references, subjects (referrers) and garbage collection."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from sqlalchemy import Connection, bindparam, delete, select, union

from . import fast, prepared
from .database import Database
from .group_commit import Chain
from .models import Blob, Manifest, ManifestReference, Repository, RepositoryBlob, Tag, now
from .queries import RepositoryQueries, missing_or_before_bytes, repository_id, upsert

TYPE_CHECKING = False
if TYPE_CHECKING:
    from registry.lifecycle.hooks import BoundLifecycle, Lifecycle


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    """What the index stores about one manifest push (the bytes are already in storage)."""

    digest: str
    media_type: str
    size: int
    artifact_type: str | None = None
    subject: str | None = None
    annotations: dict[str, Any] | None = None
    blobs: tuple[str, ...] = ()
    children: tuple[str, ...] = ()
    tags: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class ManifestRow:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    annotations: dict[str, Any] | None


_GET_MANIFEST = (
    select(Manifest.digest, Manifest.media_type, Manifest.size, Manifest.artifact_type, Manifest.annotations)
    .join(Repository, Repository.id == Manifest.repository_id)
    .where(Repository.name == bindparam("repository"), Manifest.digest == bindparam("digest"))
)


_MANIFEST_ID = select(Manifest.id).where(Manifest.repository_id == bindparam("repository_id"),
                                         Manifest.digest == bindparam("digest"))


class ManifestQueries:
    """Manifests, their references and subjects (referrers), and GC's view of them. Repository
    rows come from ``repositories`` (the same transaction helpers)."""

    def __init__(self, db: Database, lifecycle: "Lifecycle", repositories: RepositoryQueries) -> None:
        self.db, self.lifecycle, self.repositories = db, lifecycle, repositories

    async def put_manifest(self, repository: str, rec: ManifestRecord, mark: int | None = None,
                           before: Callable[[], Any] | None = None) -> None:
        """Record a manifest, its references, its subject and its tags in one transaction.
        ``mark``: ``sweep_mark()`` read before the manifest's bytes were written. ``before``:
        the blocking write of those bytes, chained before the transaction (``Database.write``:
        its errors are raised as they are and nothing is recorded)."""
        await self.db.write(self._put_tx(repository, rec, mark, self.lifecycle.bind()), before=before)

    async def check_and_put_manifest(self, repository: str, rec: ManifestRecord,
                                     put: Callable[[], Any]) -> set[str] | None:
        """An image manifest's PUT, woken for once: the check of ``rec.blobs`` and its bytes' GC
        review in one write (``missing_or_before_bytes``) and, when nothing is missing, chained
        after that commit without the event loop (``Database.write(then=)``): ``put()`` (the
        verified bytes), then ``put_manifest``'s transaction with the review's mark. None when
        the manifest is recorded; else the missing digests (nothing queued, written or recorded).
        The durable order is ``put_manifest(before=)``'s after the check: review, bytes, names.
        The chained put's errors are raised as they are (nothing recorded); ``BytesSwept`` and
        ``ReferencesGone`` as ``put_manifest`` raises them."""
        life = self.lifecycle.bind()
        wanted = sorted(set(rec.blobs))

        def then(value: tuple[set[str], int | None]) -> Chain | None:
            missing, mark = value
            return None if missing else Chain(put, self._put_tx(repository, rec, mark, life))

        found = await self.db.write(lambda conn: missing_or_before_bytes(conn, life, repository, wanted, rec.digest),
                                    then=then)
        return found[0] if found is not None else None

    def _put_tx(self, repository: str, rec: ManifestRecord, mark: int | None,
                life: "BoundLifecycle") -> Callable[[Connection], None]:
        def tx(conn: Connection) -> None:
            repo_id = self.repositories._ensure_repository(conn, repository)
            life.manifest_putting(conn, repo_id, repository, rec.digest, rec.media_type, rec.size, rec.blobs,
                                  rec.children, rec.tags, mark)
            t = now()
            upsert(self.db, conn, "blob", {"digest": rec.digest, "size": rec.size, "created_at": t})
            prepared.execute(conn, "manifest", self._insert_manifest, {
                "repository_id": repo_id, "digest": rec.digest, "media_type": rec.media_type, "size": rec.size,
                "artifact_type": rec.artifact_type, "subject_digest": rec.subject, "annotations": rec.annotations,
                "created_at": t})
            manifest_id = fast.execute(conn, _MANIFEST_ID, {"repository_id": repo_id, "digest": rec.digest}).scalar_one()
            refs = {d: "blob" for d in rec.blobs} | {d: "manifest" for d in rec.children}
            if refs:
                # Sorted, so concurrent transactions take row locks in the same order.
                rows = [{"manifest_id": manifest_id, "digest": d, "kind": refs[d]} for d in sorted(refs)]
                prepared.execute(conn, "manifest_reference", self._insert_reference, rows)
            tags = [{"repository_id": repo_id, "name": tag, "manifest_digest": rec.digest, "updated_at": t}
                    for tag in sorted(set(rec.tags))]
            if tags:
                prepared.execute(conn, "tag", self._upsert_tag, tags)

        return tx

    # Statement builders for prepared.execute (compiled once per process).
    def _insert_manifest(self) -> Any:
        return self.db.insert(Manifest).on_conflict_do_nothing(index_elements=["repository_id", "digest"])

    def _insert_reference(self) -> Any:
        return self.db.insert(ManifestReference).on_conflict_do_nothing(index_elements=["manifest_id", "digest"])

    def _upsert_tag(self) -> Any:
        stmt = self.db.insert(Tag)
        return stmt.on_conflict_do_update(
            index_elements=["repository_id", "name"],
            set_={"manifest_digest": stmt.excluded.manifest_digest, "updated_at": stmt.excluded.updated_at})

    async def get_manifest(self, repository: str, digest: str) -> ManifestRow | None:
        params = {"repository": repository, "digest": digest}
        row = await self.db.read(lambda conn: fast.execute(conn, _GET_MANIFEST, params).first())
        return ManifestRow(*row) if row else None

    async def missing_manifests(self, repository: str, digests: list[str]) -> set[str]:
        if not digests:
            return set()
        q = (
            select(Manifest.digest)
            .join(Repository, Repository.id == Manifest.repository_id)
            .where(Repository.name == repository, Manifest.digest.in_(set(digests)))
        )
        found = await self.db.read(lambda conn: set(conn.execute(q).scalars()))
        return set(digests) - found

    async def delete_manifest(self, repository: str, digest: str) -> bool:
        """Remove a manifest and every tag pointing at it (its references go with it)."""
        life = self.lifecycle.bind()

        def tx(conn: Connection) -> bool:
            repo_id = repository_id(conn, repository)
            if repo_id is None:
                return False
            conn.execute(delete(Tag).where(Tag.repository_id == repo_id, Tag.manifest_digest == digest))
            found = conn.execute(
                select(Manifest.id, Manifest.media_type, Manifest.size)
                .where(Manifest.repository_id == repo_id, Manifest.digest == digest)
            ).first()
            if found is None:
                return False
            manifest_id = found[0]
            life.manifest_deleting(conn, repo_id, repository, manifest_id, digest, found[1], found[2])
            conn.execute(delete(ManifestReference).where(ManifestReference.manifest_id == manifest_id))
            conn.execute(delete(Manifest).where(Manifest.id == manifest_id))
            return True

        return await self.db.write(tx)

    async def referrers(self, repository: str, subject: str, artifact_type: str | None = None) -> list[ManifestRow]:
        q = (
            select(Manifest.digest, Manifest.media_type, Manifest.size, Manifest.artifact_type, Manifest.annotations)
            .join(Repository, Repository.id == Manifest.repository_id)
            .where(Repository.name == repository, Manifest.subject_digest == subject)
            .order_by(Manifest.created_at, Manifest.digest)
        )
        if artifact_type is not None:
            q = q.where(Manifest.artifact_type == artifact_type)
        return await self.db.read(lambda conn: [ManifestRow(*row) for row in conn.execute(q).all()])

    # -- garbage collection and fsck ----------------------------------------------------------
    async def referenced_digests(self) -> set[str]:
        """What GC keeps: every manifest, and what manifests name through their repository's
        link (a link alone, or a reference alone, keeps nothing: lifecycle/reviews.py)."""
        through_links = (
            select(ManifestReference.digest)
            .join(Manifest, Manifest.id == ManifestReference.manifest_id)
            .join(RepositoryBlob, (RepositoryBlob.repository_id == Manifest.repository_id)
                  & (RepositoryBlob.digest == ManifestReference.digest))
        )
        q = union(select(Manifest.digest), through_links)
        return await self.db.read(lambda conn: set(conn.execute(q).scalars()))

    async def live_digests(self) -> set[str]:
        """Mark: every digest some name still reaches, through the repositories' links only.

        A reference counts only when the referencing manifest's repository links what it names
        (a blob link or a manifest of that repository), so the mark is the links plus the
        manifests: a reference row alone never keeps another repository's blob alive (#13.2).
        Reads go through the same links, so a blob no link reaches cannot be read anyway."""
        q = union(select(RepositoryBlob.digest), select(Manifest.digest))
        return await self.db.read(lambda conn: set(conn.execute(q).scalars()))

    async def named_digests(self) -> list[tuple[str, str, str]]:
        """(repository, digest, "blob" | "manifest") for every name the index holds (for fsck)."""
        blobs = select(Repository.name, RepositoryBlob.digest).join(Repository, Repository.id == RepositoryBlob.repository_id)
        manifests = select(Repository.name, Manifest.digest).join(Repository, Repository.id == Manifest.repository_id)

        def q(conn: Connection) -> list[tuple[str, str, str]]:
            out = [(r, d, "blob") for r, d in conn.execute(blobs).all()]
            return out + [(r, d, "manifest") for r, d in conn.execute(manifests).all()]

        return await self.db.read(q)

    async def blob_sizes(self, digests: list[str]) -> list[tuple[str, int]]:
        def q(conn: Connection) -> list[tuple[str, int]]:
            out: list[tuple[str, int]] = []
            for i in range(0, len(digests), 500):
                stmt = select(Blob.digest, Blob.size).where(Blob.digest.in_(digests[i : i + 500]))
                out += [(d, s) for d, s in conn.execute(stmt).all()]
            return out

        return await self.db.read(q)

    async def forget_blobs(self, digests: list[str]) -> None:
        """Drop blob rows whose bytes were swept (only rows nothing links to)."""

        def tx(conn: Connection) -> None:
            for i in range(0, len(digests), 500):
                part = digests[i : i + 500]
                linked = select(RepositoryBlob.digest).where(RepositoryBlob.digest.in_(part))
                conn.execute(delete(Blob).where(Blob.digest.in_(part), Blob.digest.not_in(linked)))

        await self.db.write(tx)

"""More read queries for the catalog (and the one batched write it makes): headline tags,
referrers of a page of tags, last pulls, and storage split into unique and shared bytes.

Each is one or two index-backed statements per page, like registry/index/catalog.py:

- the headline tag of a repository (the one its pull command names) is ``latest`` if present,
  else the most recently pushed tag that is not a cosign ``sha256-...`` attachment tag; a
  correlated subquery per repository of the page (a range scan of that repository's tags);
- "unique" bytes of a repository are those of the blobs and manifests no other repository
  holds; "shared" the rest of what it holds. For namespaces (the name up to its first ``/``)
  the same split, between namespaces.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, literal, or_, select, union

from .catalog import headline_of as _headline
from .catalog_models import TagPull
from .database import Database
from .models import Blob, Manifest, Repository, RepositoryBlob, Tag


@dataclass(frozen=True, slots=True)
class Headline:
    tag: str
    digest: str
    media_type: str | None  # not read: the summary reads it from the manifest itself


@dataclass(frozen=True, slots=True)
class Attached:
    """A manifest whose ``subject`` is one of the page's digests (a signature, an SBOM...)."""

    subject: str
    digest: str
    media_type: str
    artifact_type: str | None


@dataclass(frozen=True, slots=True)
class StorageRow:
    name: str
    repositories: int
    unique_bytes: int
    shared_bytes: int


@dataclass(frozen=True, slots=True)
class TagPageDetails:
    attached: list[Attached]
    scheme_tags: dict[str, str]  # cosign tag-scheme name -> digest
    pulls: dict[str, float]  # tag or digest -> last pull
    storage: StorageRow


# Built once (compiling a statement costs more than running it): the headline tag and its
# digest of each repository in :ids, two correlated subqueries over that repository's tags.
_HEADLINES = select(Repository.id, _headline(Tag.name), _headline(Tag.manifest_digest)).where(
    Repository.id.in_(bindparam("ids", expanding=True)))


def _held():
    """(repository_id, digest) of everything repositories hold: linked blobs and manifests."""
    blobs = select(RepositoryBlob.repository_id.label("rid"), RepositoryBlob.digest.label("digest"))
    manifests = select(Manifest.repository_id.label("rid"), Manifest.digest.label("digest"))
    return union(blobs, manifests).subquery()


def _repository_storage():
    rid = bindparam("rid")
    held = union(select(RepositoryBlob.digest.label("digest")).where(RepositoryBlob.repository_id == rid),
                 select(Manifest.digest.label("digest")).where(Manifest.repository_id == rid)).subquery()
    other_blob = select(literal(1)).where(RepositoryBlob.digest == held.c.digest,
                                          RepositoryBlob.repository_id != rid).exists()
    other_manifest = select(literal(1)).where(Manifest.digest == held.c.digest, Manifest.repository_id != rid).exists()
    return select(Blob.size, or_(other_blob, other_manifest)).select_from(held).join(Blob, Blob.digest == held.c.digest)


_REPOSITORY_STORAGE = _repository_storage()  # (size, held elsewhere?) of each digest a repository holds
_ATTACHED = (select(Manifest.subject_digest, Manifest.digest, Manifest.media_type, Manifest.artifact_type)
             .where(Manifest.repository_id == bindparam("rid"),
                    Manifest.subject_digest.in_(bindparam("digests", expanding=True)))
             .order_by(Manifest.created_at, Manifest.digest))
_TAG_DIGESTS = select(Tag.name, Tag.manifest_digest).where(Tag.repository_id == bindparam("rid"),
                                                           Tag.name.in_(bindparam("names", expanding=True)))
_PULLS = select(TagPull.reference, TagPull.pulled_at).where(TagPull.repository_id == bindparam("rid"),
                                                            TagPull.reference.in_(bindparam("refs", expanding=True)))


def _storage_of(conn: Connection, repository_id: int, name: str) -> StorageRow:
    unique = shared = 0
    for size, elsewhere in conn.execute(_REPOSITORY_STORAGE, {"rid": repository_id}).all():
        if elsewhere:
            shared += int(size or 0)
        else:
            unique += int(size or 0)
    return StorageRow(name, 1, unique, shared)


def namespace_of(name: str) -> str:
    return name.split("/", 1)[0] if "/" in name else ""


class CatalogDetails:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def headlines(self, repository_ids: list[int]) -> dict[int, Headline]:
        if not repository_ids:
            return {}
        rows = await self.db.read(lambda conn: conn.execute(_HEADLINES, {"ids": list(repository_ids)}).all())
        return {rid: Headline(tag, digest, None) for rid, tag, digest in rows if tag is not None}

    async def tag_page(self, repository_id: int, name: str, digests: list[str], references: list[str],
                       scheme_names: list[str]) -> TagPageDetails:
        """Everything the repository page adds to its tag rows, in one round trip: referrers of the page's manifests, cosign tag-scheme names that exist, last pulls of the
        page's tags and digests, and the repository's unique/shared bytes."""
        rid = repository_id

        def q(conn: Connection) -> TagPageDetails:
            attached = [Attached(*r) for r in conn.execute(_ATTACHED, {"rid": rid, "digests": digests}).all()] \
                if digests else []
            scheme = dict(conn.execute(_TAG_DIGESTS, {"rid": rid, "names": scheme_names}).all()) if scheme_names else {}
            pulls = dict(conn.execute(_PULLS, {"rid": rid, "refs": references}).all()) if references else {}
            return TagPageDetails(attached, scheme, pulls, _storage_of(conn, rid, name))

        return await self.db.read(q)

    async def last_pulls(self, repository_id: int, references: list[str]) -> dict[str, float]:
        if not references:
            return {}
        params = {"rid": repository_id, "refs": list(set(references))}
        return await self.db.read(lambda conn: dict(conn.execute(_PULLS, params).all()))

    async def record_pulls(self, pulls: dict[tuple[str, str], float]) -> None:
        """Upsert a batch of (repository name, reference) -> time, in one transaction."""
        if not pulls:
            return
        names = sorted({name for name, _ in pulls})

        def tx(conn: Connection) -> None:
            ids = dict(conn.execute(select(Repository.name, Repository.id).where(Repository.name.in_(names))).all())
            rows = [{"repository_id": ids[name], "reference": ref[:200], "pulled_at": at}
                    for (name, ref), at in sorted(pulls.items()) if name in ids]
            if not rows:
                return
            stmt = self.db.insert(TagPull)
            conn.execute(stmt.on_conflict_do_update(index_elements=["repository_id", "reference"],
                                                    set_={"pulled_at": stmt.excluded.pulled_at}), rows)

        await self.db.write(tx)

    # -- storage ------------------------------------------------------------------------------
    async def repository_storage(self, repository_id: int, name: str) -> StorageRow:
        return await self.db.read(lambda conn: _storage_of(conn, repository_id, name))

    async def namespace_storage(self) -> list[StorageRow]:
        """Every namespace's unique and shared bytes: one pass over what repositories hold
        (about 0.3 s at 20k repositories / 100k tags; the web layer caches the answer)."""
        held = _held()
        stmt = (select(Repository.name, held.c.digest, Blob.size).select_from(held)
                .join(Repository, Repository.id == held.c.rid).join(Blob, Blob.digest == held.c.digest))
        repos = select(Repository.name)

        def q(conn: Connection) -> list[StorageRow]:
            owners: dict[str, set[str] | str] = {}
            sizes: dict[str, int] = {}
            for name, digest, size in conn.execute(stmt):
                ns = namespace_of(name)
                seen = owners.get(digest)
                if seen is None:
                    owners[digest] = ns
                    sizes[digest] = int(size or 0)
                elif isinstance(seen, str):
                    if seen != ns:
                        owners[digest] = {seen, ns}
                else:
                    seen.add(ns)
            counts: dict[str, int] = {}
            for (name,) in conn.execute(repos):
                ns = namespace_of(name)
                counts[ns] = counts.get(ns, 0) + 1
            unique = dict.fromkeys(counts, 0)
            shared = dict.fromkeys(counts, 0)
            for digest, who in owners.items():
                if isinstance(who, str):
                    unique[who] = unique.get(who, 0) + sizes[digest]
                else:
                    for ns in who:
                        shared[ns] = shared.get(ns, 0) + sizes[digest]
            return [StorageRow(ns, counts.get(ns, 0), unique.get(ns, 0), shared.get(ns, 0)) for ns in sorted(counts)]

        return await self.db.read(q)


__all__ = ["Attached", "CatalogDetails", "Headline", "StorageRow", "TagPageDetails", "namespace_of"]

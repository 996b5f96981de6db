"""The index schema: every name the registry knows, as Core tables declared in the ORM's form.

Other parts of the registry (auth, the catalog) add their own tables by subclassing ``Base``
in their own ``models`` module; migrations/env.py imports those modules so Alembic sees them.
Timestamps are float seconds since the epoch: the same on SQLite and PostgreSQL, and cheap to
compare for expiry and GC grace periods.

Names that are listed in lexical order (repositories, tags) use the "C" collation on
PostgreSQL, so ORDER BY and the ``last`` cursor compare bytes as the OCI spec's "lexical
order" means, and the primary-key index serves the pagination query directly.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, BigInteger, Boolean, Column, Float, ForeignKey, Index, Integer, MetaData, String, \
    Table, UniqueConstraint, true

if TYPE_CHECKING:
    from sqlalchemy.orm import Mapped
else:
    Mapped = None  # annotations are strings here (``from __future__ import annotations``)

DIGEST = String(200)


def lexical_name(length: int) -> String:
    return String(length).with_variant(String(length, collation="C"), "postgresql")


def now() -> float:
    return time.time()


class _Pending:
    """A column declared by ``mapped_column``: becomes a ``Column`` when its class is made."""

    def __init__(self, args: tuple, kwargs: dict) -> None:
        self.args, self.kwargs = args, kwargs


def mapped_column(*args: Any, **kwargs: Any) -> Any:
    """The declaration form of SQLAlchemy's ORM (``name: Mapped[T] = mapped_column(type, ...)``),
    for Core tables: every query runs on Core connections, and the ORM (~6 MiB resident, ~40
    modules) is never imported by the server. As the ORM does, ``nullable`` unless given
    follows the annotation: ``Mapped[X | None]`` (or ``Optional``) is NULL, anything else NOT
    NULL (primary keys always)."""
    return _Pending(args, kwargs)


def _optional(annotation: Any) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return "None" in text or "Optional" in text


class Base:
    """The declarative base: a subclass with ``__tablename__`` gets ``__table__`` (a Core
    ``Table`` in ``Base.metadata``) and its attributes become the table's columns, so
    ``Tag.name == x``, ``select(Tag)``, ``insert(Tag)`` and ``Tag.__table__`` are all Core."""

    metadata = MetaData()
    __table__: Table

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("__tablename__")
        if name is None:
            return
        annotations = cls.__dict__.get("__annotations__", {})
        columns = []
        for attr, value in list(cls.__dict__.items()):
            if not isinstance(value, _Pending):
                continue
            kw = dict(value.kwargs)
            if "nullable" not in kw:
                kw["nullable"] = not kw.get("primary_key", False) and _optional(annotations.get(attr, ""))
            columns.append(Column(attr, *value.args, **kw))
        table_args = cls.__dict__.get("__table_args__", ())
        options: dict[str, Any] = {}
        if isinstance(table_args, dict):
            table_args, options = (), table_args
        elif table_args and isinstance(table_args[-1], dict):
            table_args, options = table_args[:-1], table_args[-1]
        cls.__table__ = Table(name, Base.metadata, *columns, *table_args, **options)
        for column in columns:
            setattr(cls, column.key, cls.__table__.c[column.key])

    @classmethod
    def __clause_element__(cls) -> Table:
        return cls.__table__


def load_all_models() -> type[Base]:
    """Import every module that declares tables (registry/index/*models*.py: every table lives
    beside the index), so Base.metadata is complete for Alembic and the schema test."""
    import importlib
    import pkgutil

    from registry import index

    names = [f"registry.index.{m.name}" for m in pkgutil.iter_modules(index.__path__) if "models" in m.name]
    for name in names:
        importlib.import_module(name)
    return Base


class Repository(Base):
    __tablename__ = "repositories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(lexical_name(255), unique=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class Blob(Base):
    """Bytes the storage holds, by digest (once, whatever the number of repositories)."""

    __tablename__ = "blobs"

    digest: Mapped[str] = mapped_column(DIGEST, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class RepositoryBlob(Base):
    """A blob is visible in a repository only after it was pushed or mounted there."""

    __tablename__ = "repository_blobs"
    __table_args__ = (Index("ix_repository_blobs_digest", "digest"),)

    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True)
    digest: Mapped[str] = mapped_column(ForeignKey("blobs.digest", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class Manifest(Base):
    __tablename__ = "manifests"
    __table_args__ = (
        UniqueConstraint("repository_id", "digest", name="uq_manifests_repository_digest"),
        Index("ix_manifests_subject", "repository_id", "subject_digest"),
        Index("ix_manifests_digest", "digest"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(DIGEST)
    media_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    # What the referrers API reports: artifactType, else the config's media type.
    artifact_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    subject_digest: Mapped[str | None] = mapped_column(DIGEST, nullable=True)
    annotations: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class ManifestReference(Base):
    """What a manifest points at: blobs (config, layers) or child manifests (index entries)."""

    __tablename__ = "manifest_references"
    __table_args__ = (Index("ix_manifest_references_digest", "digest"),)

    manifest_id: Mapped[int] = mapped_column(ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True)
    digest: Mapped[str] = mapped_column(DIGEST, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "blob" or "manifest"


class Tag(Base):
    __tablename__ = "tags"
    __table_args__ = (Index("ix_tags_manifest", "repository_id", "manifest_digest"),)

    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(lexical_name(128), primary_key=True)
    manifest_digest: Mapped[str] = mapped_column(DIGEST)
    updated_at: Mapped[float] = mapped_column(Float, default=now)


class UploadSession(Base):
    """An upload in progress. The staged bytes are in storage; their size is the file's size.

    ``staged``: the session's staging area was made. A session opened on the filesystem driver
    with SQLite is only this row until its first appended byte (POST + PUT of a small blob, the
    common push, never makes one), so a missing staging area means "empty" while ``staged`` is
    false and "lost" (BLOB_UPLOAD_UNKNOWN) once it is true."""

    __tablename__ = "upload_sessions"
    __table_args__ = (Index("ix_upload_sessions_updated", "updated_at"),
                      Index("ix_upload_sessions_repository", "repository"),
                      Index("ix_upload_sessions_client", "client"))

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    repository: Mapped[str] = mapped_column(String(255))
    # Who opened it (a user name, else an address), for the per-client cap on open sessions.
    client: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    updated_at: Mapped[float] = mapped_column(Float, default=now)
    staged: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

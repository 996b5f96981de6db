"""Names: the SQL index of repositories, blob links, manifests, references, tags and uploads.

The only place SQL lives. ``Index(url)`` works on SQLite and PostgreSQL (asyncpg) through the
same code; ``Base`` (in models.py) is the declarative base other packages extend.

Adding a query (auth, catalog): write it as a plain function of a synchronous SQLAlchemy
``Connection`` and run it with ``await index.db.read(fn)`` or ``await index.db.write(fn)`` (one
transaction, retried on transient conflicts); use ``index.db.insert(Model)`` for upserts
(``on_conflict_do_nothing``/``on_conflict_do_update`` on both dialects). Never block on the
event loop: database.py runs these functions in threads (SQLite) or through run_sync
(PostgreSQL). New tables need an Alembic revision in migrations/versions/ whose
``down_revision`` is the latest one you build on ("0001_index" to start); serve and migrate
upgrade to all heads, and tests/registry/index/test_index.py checks models and migrations agree.
"""
from __future__ import annotations

from typing import Any

from .database import Database
from .manifests import ManifestQueries, ManifestRecord, ManifestRow
from .models import Base
from .queries import RepositoryQueries, UploadRow

__all__ = ["Base", "Index", "ManifestRecord", "ManifestRow", "UploadRow"]


def _public_queries(cls: type) -> list[str]:
    return [name for name, value in vars(cls).items() if not name.startswith("_") and callable(value)]


class _Delegated:
    """``index.name`` is ``index.<part>.name``, looked up when used (so a test may patch the
    part's class); the parts are the query objects the Index is composed of."""

    def __init__(self, part: str, name: str) -> None:
        self.part, self.name = part, name

    def __get__(self, index: "Index | None", owner: type) -> Any:
        if index is None:
            return self
        return getattr(getattr(index, self.part), self.name)


class Index:
    """The index, composed of query objects over one Database (as AuthQueries, CatalogQueries
    and ProxyQueries are): ``repositories`` (repositories, blob links, uploads, tags) and
    ``manifests`` (manifests, references, referrers, GC's mark). Their public queries are also
    names of the Index itself (``index.put_manifest`` is ``index.manifests.put_manifest``), the
    one name callers use."""

    def __init__(self, url: str) -> None:
        from registry.lifecycle.hooks import Lifecycle

        self.db = Database(url)
        # GC review queue, safety checks and events, called inside the index's transactions.
        self.lifecycle = Lifecycle()
        self.repositories = RepositoryQueries(self.db, self.lifecycle)
        self.manifests = ManifestQueries(self.db, self.lifecycle, self.repositories)

    @property
    def engine(self):
        return self.db.engine

    async def migrate(self, in_child: bool = False) -> None:
        """Upgrade the schema to the heads; ``in_child``: in a child process (see migrate.py)."""
        from .migrate import is_current_sync, upgrade, upgrade_in_child, upgrade_url_in_child

        if self.db.dialect == "sqlite" and not self.db.has_engine:
            # The version check on the reader engine: a current schema (and, with ``in_child``,
            # one the child upgrades) never creates the async engine (database.py). A database
            # that cannot even be opened takes the path below, as before (Alembic reports it).
            try:
                current: bool | None = await self.db.read(is_current_sync)
            except Exception:
                current = None
            if current:
                return
            if current is not None and in_child:
                await upgrade_url_in_child(self.db.url)
                return
        await (upgrade_in_child if in_child else upgrade)(self.db.engine)
        if self.db.dialect == "sqlite":
            # Queries use their own sync engines (database.py): close the async engine's pooled
            # connection (and its aiosqlite thread) that the version check opened.
            await self.db.engine.dispose()

    async def close(self) -> None:
        await self.db.close()


for _part, _cls in (("repositories", RepositoryQueries), ("manifests", ManifestQueries)):
    for _name in _public_queries(_cls):
        assert not hasattr(Index, _name), f"two index parts define {_name}"
        setattr(Index, _name, _Delegated(_part, _name))

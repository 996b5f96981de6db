"""Names: the SQL index of repositories, blob links, manifests, references, tags and uploads.

The only place SQL lives. ``Index(url)`` works on SQLite (aiosqlite) and PostgreSQL (asyncpg)
through the same code; ``Base`` (in models.py) is the declarative base other packages extend.
"""
from __future__ import annotations

from .browse import BrowseQueries, RepositorySummary, TagDetail
from .database import Database
from .manifests import ManifestQueries, ManifestRecord, ManifestRow
from .models import Base
from .queries import RepositoryQueries, UploadRow

__all__ = ["Base", "Index", "ManifestRecord", "ManifestRow", "RepositorySummary", "TagDetail", "UploadRow"]


class Index(RepositoryQueries, ManifestQueries, BrowseQueries):
    def __init__(self, url: str) -> None:
        self.db = Database(url)

    @property
    def engine(self):
        return self.db.engine

    async def migrate(self) -> None:
        from .migrate import upgrade

        await upgrade(self.db.engine)

    async def close(self) -> None:
        await self.db.close()

"""Tables of the pull-through cache (registry.proxy), on the shared ``Base``.

A cached repository is an ordinary repository (its manifests, tags and blob links are the usual
rows, so the catalog, quotas and GC see it); these tables only say where it came from and what
the cache needs to decide when to ask the upstream again:

- ``proxy_repositories``: which upstream and remote name a local repository mirrors, and when it
  was last pulled (for least-recently-pulled eviction);
- ``proxy_tags``: when each cached tag was last confirmed against the upstream (``tag_ttl``).
"""
from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Index, String

from .models import Base, Mapped, lexical_name, mapped_column, now


class ProxyRepository(Base):
    __tablename__ = "proxy_repositories"
    __table_args__ = (Index("ix_proxy_repositories_pulled", "last_pulled_at"),)

    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True)
    upstream: Mapped[str] = mapped_column(String(64))
    remote_name: Mapped[str] = mapped_column(String(255))
    last_pulled_at: Mapped[float] = mapped_column(Float, default=now)


class ProxyTag(Base):
    __tablename__ = "proxy_tags"

    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(lexical_name(128), primary_key=True)
    checked_at: Mapped[float] = mapped_column(Float, default=now)

"""The catalog's own table: when each tag (or digest) of a repository was last pulled.

Written in batches by registry/web/pulls.py (never on the pull's own path), read by the
catalog pages. ``reference`` is what the client asked for: a tag, or a digest (containerd
resolves a tag with HEAD and fetches by digest), so a tag's last pull is the later of the two.
"""
from __future__ import annotations

from sqlalchemy import Float, ForeignKey, String

from .models import Base, DIGEST, Mapped, mapped_column


class TagPull(Base):
    __tablename__ = "catalog_pulls"

    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True)
    reference: Mapped[str] = mapped_column(String(DIGEST.length), primary_key=True)
    pulled_at: Mapped[float] = mapped_column(Float)

"""Tables of the auth work (registry.auth): users and robot tokens, on the shared ``Base``.

Secrets are never stored: users keep a bcrypt hash (``$2b$``/``$2y$``), robot tokens a SHA-256
of their random secret (256 bits of entropy need no slow hash). Groups and robot scopes are
small JSON lists, read whole with the row that owns them.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, Integer, String

from .models import Base, Mapped, mapped_column, now


class User(Base):
    __tablename__ = "auth_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(100))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    # Refresh tokens issued before this moment stop working (password change, removal).
    password_changed_at: Mapped[float] = mapped_column(Float, default=now)


class RobotToken(Base):
    __tablename__ = "auth_robot_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    # [{"pattern": "team-a/*", "actions": ["pull", "push"]}, ...]
    scopes: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)

"""Queries on the auth tables (registry/index/auth_models.py), for registry.auth.

``AuthQueries(index.db)``: every method runs one plain function of a sync Connection through
the shared ``Database`` (threads on SQLite, run_sync on PostgreSQL), as the index does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, select, update

from .auth_models import RobotToken, User
from .database import Database
from .models import now


@dataclass(frozen=True, slots=True)
class UserRecord:
    name: str
    password_hash: str
    is_admin: bool
    groups: tuple[str, ...]
    password_changed_at: float


@dataclass(frozen=True, slots=True)
class RobotRecord:
    name: str
    secret_sha256: str
    scopes: tuple[dict[str, Any], ...]
    created_at: float
    expires_at: float | None
    revoked_at: float | None


def _user(row: Any) -> UserRecord:
    return UserRecord(row.name, row.password_hash, bool(row.is_admin), tuple(row.groups or ()),
                      float(row.password_changed_at))


def _robot(row: Any) -> RobotRecord:
    return RobotRecord(row.name, row.secret_sha256, tuple(row.scopes or ()), row.created_at, row.expires_at,
                       row.revoked_at)


class AuthQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- users ---------------------------------------------------------------------------------
    async def get_user(self, name: str) -> UserRecord | None:
        def q(conn: Connection) -> UserRecord | None:
            row = conn.execute(select(User).where(User.name == name)).first()
            return _user(row) if row else None
        return await self.db.read(q)

    async def list_users(self) -> list[UserRecord]:
        return await self.db.read(
            lambda conn: [_user(r) for r in conn.execute(select(User).order_by(User.name))])

    async def add_user(self, name: str, password_hash: str, is_admin: bool = False,
                       groups: list[str] | tuple[str, ...] = ()) -> bool:
        """False when the name is taken."""
        t = now()
        stmt = self.db.insert(User).values(name=name, password_hash=password_hash, is_admin=is_admin,
                                           groups=list(groups), created_at=t, password_changed_at=t)
        stmt = stmt.on_conflict_do_nothing(index_elements=["name"])
        return await self.db.write(lambda conn: conn.execute(stmt).rowcount == 1)

    async def upsert_user_hash(self, name: str, password_hash: str) -> None:
        """Create or replace a user's password hash (htpasswd import); groups/admin unchanged."""
        t = now()
        stmt = self.db.insert(User).values(name=name, password_hash=password_hash, is_admin=False, groups=[],
                                           created_at=t, password_changed_at=t)
        stmt = stmt.on_conflict_do_update(index_elements=["name"],
                                          set_={"password_hash": password_hash, "password_changed_at": t})
        await self.db.write(lambda conn: conn.execute(stmt))

    async def set_password(self, name: str, password_hash: str) -> bool:
        stmt = update(User).where(User.name == name).values(password_hash=password_hash, password_changed_at=now())
        return await self.db.write(lambda conn: conn.execute(stmt).rowcount == 1)

    async def update_user(self, name: str, is_admin: bool | None = None, groups: list[str] | None = None) -> bool:
        values: dict[str, Any] = {}
        if is_admin is not None:
            values["is_admin"] = is_admin
        if groups is not None:
            values["groups"] = list(groups)
        if not values:
            return await self.get_user(name) is not None
        stmt = update(User).where(User.name == name).values(**values)
        return await self.db.write(lambda conn: conn.execute(stmt).rowcount == 1)

    async def remove_user(self, name: str) -> bool:
        stmt = delete(User).where(User.name == name)
        return await self.db.write(lambda conn: conn.execute(stmt).rowcount == 1)

    # -- robot tokens -------------------------------------------------------------------------
    async def add_robot(self, name: str, secret_sha256: str, scopes: list[dict[str, Any]],
                        expires_at: float | None) -> bool:
        stmt = self.db.insert(RobotToken).values(name=name, secret_sha256=secret_sha256, scopes=scopes,
                                                 created_at=now(), expires_at=expires_at, revoked_at=None)
        stmt = stmt.on_conflict_do_nothing(index_elements=["name"])
        return await self.db.write(lambda conn: conn.execute(stmt).rowcount == 1)

    async def get_robot(self, name: str) -> RobotRecord | None:
        def q(conn: Connection) -> RobotRecord | None:
            row = conn.execute(select(RobotToken).where(RobotToken.name == name)).first()
            return _robot(row) if row else None
        return await self.db.read(q)

    async def list_robots(self) -> list[RobotRecord]:
        return await self.db.read(
            lambda conn: [_robot(r) for r in conn.execute(select(RobotToken).order_by(RobotToken.name))])

    async def revoke_robot(self, name: str) -> bool:
        stmt = (update(RobotToken).where(RobotToken.name == name, RobotToken.revoked_at.is_(None))
                .values(revoked_at=now()))
        return await self.db.write(lambda conn: conn.execute(stmt).rowcount == 1)

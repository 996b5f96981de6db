"""Upserts of the push path, built and compiled once per process instead of once per call.

SQLAlchemy gives the SQLite and PostgreSQL ``Insert`` constructs (the ones that carry
``ON CONFLICT``) no cache key (``inherit_cache = False``): every execution of them compiled the
statement again, even a statement object built once. That was the largest single cost of a
manifest PUT (bench/results/PROFILE.md, section 7). Here such a statement is built once per
(dialect, name, columns) and handed to ``fast.execute``, which on SQLite compiles it once and
runs the SQL (exactly what SQLAlchemy would have sent, with the column types' bind processors,
so JSON and booleans are still converted) on the sqlite3 connection (PROFILE.md section 15).
"""
from __future__ import annotations

from collections.abc import Mapping  # not typing's: its isinstance() is slow
from typing import Any, Callable, Sequence

from sqlalchemy import Connection
from sqlalchemy.sql import Executable

from . import fast

_PREPARED: dict[tuple[str, str, tuple[str, ...]], Executable] = {}
Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]


def execute(conn: Connection, name: str, build: Callable[[], Executable], params: Params) -> Any:
    """``conn.execute(build(), params)``, with ``build()`` compiled once for this dialect and set
    of columns. ``build`` must not depend on anything but the dialect and ``name``."""
    if conn.dialect.name != "sqlite":
        # asyncpg's dialect compiles to numbered binds whatever paramstyle it is given; the
        # PostgreSQL path (not the default) keeps SQLAlchemy's per-call compilation.
        return conn.execute(build(), params)
    first = params if isinstance(params, Mapping) else params[0]
    key = (conn.dialect.name, name, tuple(first))
    stmt = _PREPARED.get(key)
    if stmt is None:
        stmt = _PREPARED[key] = build()
    return fast.execute(conn, stmt, params, columns=key[2])

"""Upserts of the push path, compiled once per process instead of once per call.

SQLAlchemy gives the SQLite and PostgreSQL ``Insert`` constructs (the ones that carry
``ON CONFLICT``) no cache key (``inherit_cache = False``): every execution of them compiled the
statement again, even a statement object built once. That was the largest single cost of a
manifest PUT (bench/results/PROFILE.md, section 7). Here such a statement is compiled once per
(dialect, name, columns) to SQL with named binds and wrapped in ``text()``, whose cache key is
its string, with the compiled binds' types kept (so JSON and booleans are still converted).
The SQL is exactly what SQLAlchemy would have sent. SQLite only (the default configuration).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from sqlalchemy import Connection, TextClause, bindparam, text
from sqlalchemy.sql import Executable

_PREPARED: dict[tuple[str, str, tuple[str, ...]], TextClause] = {}
Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]


def _compile(conn: Connection, stmt: Executable, columns: tuple[str, ...]) -> TextClause:
    dialect = type(conn.dialect)(paramstyle="named")
    compiled = stmt.compile(dialect=dialect, column_keys=list(columns))
    binds = [bindparam(key, value=compiled.params.get(key), type_=bind.type)
             for key, bind in compiled.binds.items() if f":{key}" in compiled.string]
    return text(compiled.string).bindparams(*binds)


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
        stmt = _PREPARED[key] = _compile(conn, build(), key[2])
    return conn.execute(stmt, params)

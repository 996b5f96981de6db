"""Prebuilt statements run on the sqlite3 connection itself: compiled once, executed raw.

A push or a manifest PUT runs ~15 small statements; through SQLAlchemy Core each one costs
more Python than SQLite takes to run it (cache-key generation, the execution context, one Row
per result row; bench/results/PROFILE.md section 15). For statements built once at import time
(module constants) and the compiled-once upserts of ``prepared``, ``execute(conn, stmt, params)``
compiles the statement once for SQLite into its SQL with ``?`` binds, the order of those binds
and their type processors, then runs it with ``sqlite3.Connection.execute`` in the caller's
transaction (the same connection SQLAlchemy began it on). The SQL is exactly the one SQLAlchemy
would send; bind and result processors of the column types are applied as SQLAlchemy would.

Anything else falls back to ``conn.execute``: another dialect (PostgreSQL keeps SQLAlchemy),
a statement whose Python-side column defaults would have to be computed, an executemany with an
expanding ``IN`` list. sqlite3's errors are raised as SQLAlchemy's (``DBAPIError.instance``), so
retries, ``IndexUnavailable`` and IntegrityError handling see what they always saw.

Only statements that live for the whole process may be given (they are cached by identity).
"""
from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from collections.abc import Mapping  # not typing's: its isinstance() is slow (profile)
from typing import Any, Callable, Iterator, Sequence

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement

_POSTCOMPILE = re.compile(r"__\[POSTCOMPILE_(\w+)\]")
Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


@dataclass
class _Compiled:
    sql: str
    names: tuple[str, ...]  # bind names in ``?`` order; an expanding one stands for its list
    defaults: dict[str, Any]  # values bound in the statement itself (literals, bindparam(value=))
    bind_procs: dict[str, Callable[[Any], Any]]
    result_procs: tuple[Callable[[Any], Any] | None, ...] | None  # None when no column needs one
    expanding: frozenset[str]
    by_length: dict[tuple[int, ...], str]


class Rows:
    """The part of SQLAlchemy's Result the index's queries use, over fetched tuples."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[tuple], rowcount: int) -> None:
        self._rows, self.rowcount = rows, rowcount

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        if len(self._rows) != 1:
            from sqlalchemy.exc import MultipleResultsFound, NoResultFound

            raise NoResultFound("no row was found") if not self._rows else MultipleResultsFound("several rows")
        return self._rows[0][0]

    def scalar_one_or_none(self) -> Any:
        if len(self._rows) > 1:
            from sqlalchemy.exc import MultipleResultsFound

            raise MultipleResultsFound("several rows")
        return self._rows[0][0] if self._rows else None

    def scalars(self) -> Iterator[Any]:
        return (row[0] for row in self._rows)

    def first(self) -> tuple | None:
        return self._rows[0] if self._rows else None

    def all(self) -> list[tuple]:
        return list(self._rows)

    def __iter__(self) -> Iterator[tuple]:
        return iter(self._rows)


_CACHE: dict[tuple[int, tuple[str, ...] | None], _Compiled | None] = {}
_KEEP: list[ClauseElement] = []  # statements cached by id() are kept alive, so ids stay theirs


def _compile(conn: Connection, stmt: ClauseElement, columns: tuple[str, ...] | None) -> _Compiled | None:
    dialect = conn.dialect
    compiled: Any = stmt.compile(dialect=dialect, column_keys=list(columns) if columns is not None else None)
    if getattr(compiled, "insert_prefetch", None) or getattr(compiled, "update_prefetch", None) \
            or compiled.positiontup is None:
        return None  # Python-side defaults to compute: SQLAlchemy's execution context does that
    binds = compiled.binds
    names = tuple(compiled.positiontup)
    expanding = frozenset(n for n in names if binds[n].expanding)
    procs = {n: p for n, p in (compiled._bind_processors or {}).items() if p is not None}
    result_procs = None
    if compiled._result_columns:
        found = tuple(col.type._cached_result_processor(dialect, None) for col in compiled._result_columns)
        result_procs = found if any(found) else None
    defaults = {n: binds[n].value for n in names if not binds[n].required and binds[n].value is not None}
    return _Compiled(compiled.string, names, defaults, procs, result_procs, expanding, {})


def _sql_for(c: _Compiled, values: Mapping[str, Any]) -> str:
    if not c.expanding:
        return c.sql
    lengths = tuple(len(values[n]) for n in sorted(c.expanding))
    sql = c.by_length.get(lengths)
    if sql is None:
        def placeholders(m: re.Match) -> str:
            n = len(values[m.group(1)])
            # SQLAlchemy's own rendering of an empty IN: a subquery that selects nothing
            return ", ".join("?" * n) if n else "SELECT 1 FROM (SELECT 1) WHERE 1!=1"
        sql = c.by_length[lengths] = _POSTCOMPILE.sub(placeholders, c.sql)
    return sql


def _args(c: _Compiled, values: Mapping[str, Any]) -> list[Any]:
    out: list[Any] = []
    for name in c.names:
        value = values[name] if name in values else c.defaults.get(name)
        proc = c.bind_procs.get(name)
        if name in c.expanding:
            out.extend(proc(v) for v in value) if proc else out.extend(value)
        else:
            out.append(proc(value) if proc else value)
    return out


def execute(conn: Connection, stmt: ClauseElement, params: Params = None,
            columns: tuple[str, ...] | None = None) -> Any:
    """``conn.execute(stmt, params)`` for a process-lifetime statement; on SQLite run raw.
    ``columns``: the INSERT's column keys when ``stmt`` is an insert given without values."""
    if conn.dialect.name != "sqlite":
        return conn.execute(stmt, params)
    key = (id(stmt), columns)
    try:
        c = _CACHE[key]
    except KeyError:
        c = _CACHE[key] = _compile(conn, stmt, columns)
        _KEEP.append(stmt)
    many = params is not None and not isinstance(params, Mapping)
    if c is None or (many and c.expanding):
        return conn.execute(stmt, params)
    raw = conn.connection.dbapi_connection
    if not isinstance(raw, sqlite3.Connection):  # aiosqlite's adapter (migrations, the async engine)
        return conn.execute(stmt, params)
    if not conn.in_transaction():
        conn.begin()  # as conn.execute would: a read-only begin is a no-op on the stdlib driver
    sql = c.sql
    try:
        if many:
            cur = raw.executemany(sql, [_args(c, p) for p in params])  # type: ignore[union-attr]
            return Rows([], cur.rowcount)
        values: Mapping[str, Any] = params or {}  # type: ignore[assignment]
        sql = _sql_for(c, values)
        cur = raw.execute(sql, _args(c, values))
        rows = cur.fetchall() if cur.description is not None else []
    except sqlite3.Error as e:
        raise DBAPIError.instance(sql, params, e, sqlite3.Error) from e
    if c.result_procs is not None and rows:
        procs = c.result_procs
        rows = [tuple(p(v) if p else v for p, v in zip(procs, row)) for row in rows]
    return Rows(rows, cur.rowcount)

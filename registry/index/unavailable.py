"""Which database errors mean "the index is unavailable" rather than "the query is wrong".

A database that cannot be reached or answer (a restart, a lost connection, a full disk, a pool
or statement timeout) is not the client's fault: the API answers 503 + Retry-After, which
clients retry (#13.7). Both the SQLAlchemy path (``database.py``) and the raw asyncpg point
reads (``point_reads.py``) classify their errors here, so the two can never disagree.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# Words in the class names of asyncpg's errors for a connection lost mid-query, a server
# shutting down or starting up, or a connection whose protocol broke mid-operation.
ASYNCPG_UNAVAILABLE = ("Connection", "CannotConnect", "AdminShutdown", "CrashShutdown",
                       "InternalClientError", "TooManyConnections")


class IndexUnavailable(Exception):
    """The database could not run the query for a reason that is not the query's fault; the
    original error is ``__cause__``."""


def is_unavailable(e: BaseException) -> bool:
    if isinstance(e, (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)):
        return True
    if isinstance(e, DBAPIError):
        return bool(e.connection_invalidated) or (e.orig is not None and is_unavailable(e.orig))
    # asyncpg raises OSError (refused, reset) while connecting.
    return isinstance(e, OSError) or type(e).__module__.startswith("asyncpg") and any(
        word in type(e).__name__ for word in ASYNCPG_UNAVAILABLE)


def why(e: BaseException) -> str:
    """One line for the error envelope and the log: the error's class and first line."""
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]


@contextmanager
def unavailable_as(what: str) -> Iterator[None]:
    """Re-raise an unavailable-database error as ``IndexUnavailable("index WHAT failed: ...")``."""
    try:
        yield
    except Exception as e:
        if is_unavailable(e):
            raise IndexUnavailable(f"index {what} failed: {why(e)}") from e
        raise

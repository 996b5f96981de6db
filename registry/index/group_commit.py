"""Group commit for the SQLite writer thread: the writes that are waiting share one COMMIT.

A manifest PUT is two write transactions and a 4 KiB push three (the GC protocol orders them:
review queued before bytes are written, bytes before names), and every one of them was its own
fsync-ed COMMIT on the one writer thread. Here, the ``write(fn)`` calls that are queued when the
writer becomes free run in ONE transaction, each inside its own SAVEPOINT, then one COMMIT, and
only then is each caller answered. So:

- no caller goes on before its own data is durable (crash safety and the GC ordering are what
  they were: every caller still waits for a commit that contains its work);
- an exception in one ``fn`` rolls back only its savepoint and is raised to that caller only;
- a lone write is never delayed: the writer takes what is queued and does not wait for more;
- a batch is bounded (``MAX_BATCH`` functions, and no new function starts after
  ``BATCH_BUDGET_S`` of work: the rest go back to the head of the queue);
- a transient conflict ("database is locked") or a lost transaction (I/O error, full disk)
  rolls the whole batch back and fails every caller in it with that error: each caller's own
  retry loop (``Database.write``) then runs its ``fn`` again from scratch in a later batch, as
  a retry always did.

Later functions in a batch see the earlier ones' uncommitted rows (one connection, run in
order), which is exactly what they would have seen had each committed on its own first.
"""
from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)
MAX_BATCH = 64
BATCH_BUDGET_S = 0.010
Outcome = tuple[bool, Any]  # (True, value) or (False, exception)
Runner = Callable[[Sequence[Callable[[Connection], Any]]], list[Outcome]]


class _BatchLost(Exception):
    """The batch's transaction cannot be committed: ``__cause__`` goes to every caller."""


class BeforeFailed(Exception):
    """The step chained before a write (``submit(before=)``) raised ``error``; the write was not
    queued. Carried apart from the write's own errors so that the caller raises ``error`` as it
    is (a storage error is not the index's, and is never retried as a write)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class WriterConnection:
    """The writer thread's one Connection, kept from batch to batch: checking a connection out
    of the pool and wrapping it again for every batch was a sixth of the writer thread's time
    (profile, PROFILE.md section 25). Opened again when the engine's pool was replaced
    (``dispose``), or the connection was invalidated or closed after a failure."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None
        self._pool: Any = None

    def get(self) -> Connection:
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated or self._pool is not self.engine.pool:
            self.close()
            conn = self._conn = self.engine.connect()
            self._pool = self.engine.pool
        return conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass


def run_batch(engine: Engine | WriterConnection, fns: Sequence[Callable[[Connection], Any]],
              retryable: Callable[[BaseException], bool]) -> list[Outcome]:
    """Run ``fns`` in order in one transaction and commit it; one outcome per function run
    (fewer than ``len(fns)`` if the time budget ran out: the caller queues the rest again).
    Raises if the batch as a whole failed (nothing of it is committed). ``engine``: a
    connection is checked out for the batch; a WriterConnection: its kept one is used."""
    if isinstance(engine, WriterConnection):
        kept = engine
        try:
            return _run_batch(kept.get(), fns, retryable)
        except BaseException:
            if kept._conn is not None and (kept._conn.invalidated or kept._conn.in_transaction()):
                kept.close()  # not known to be clean: the next batch opens a fresh one
            raise
    with engine.connect() as conn:
        return _run_batch(conn, fns, retryable)


def _run_batch(conn: Connection, fns: Sequence[Callable[[Connection], Any]],
               retryable: Callable[[BaseException], bool]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    single = len(fns) == 1
    lost: BaseException | None = None
    try:
        # Explicit BEGIN: the stdlib driver would otherwise begin only at the first DML,
        # and a SAVEPOINT outside a transaction would commit at its RELEASE. IMMEDIATE
        # takes the write lock now (waiting on the busy timeout) so that the reads of
        # every function in the batch are inside the transaction too.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        started = time.monotonic()
        for fn in fns:
            if outcomes and time.monotonic() - started > BATCH_BUDGET_S:
                break
            outcomes.append(_run_one(conn, fn, single, retryable))
        conn.commit()
    except _BatchLost as e:
        conn.rollback()
        lost = e.__cause__
    except BaseException:
        conn.rollback()
        raise
    if lost is not None:
        raise lost  # the function's own exception, outside the handler (no chained context)
    return outcomes


def _run_one(conn: Connection, fn: Callable[[Connection], Any], single: bool,
             retryable: Callable[[BaseException], bool]) -> Outcome:
    if single:  # no savepoint needed: its failure is the transaction's
        try:
            return True, fn(conn)
        except Exception as e:
            raise _BatchLost() from e
    _savepoint_sql(conn, "SAVEPOINT group_commit")
    try:
        value = fn(conn)
    except Exception as e:
        if retryable(e) or conn.invalidated or not conn.connection.dbapi_connection.in_transaction:
            raise _BatchLost() from e  # SQLite rolled the transaction back, or retry it all
        try:
            _savepoint_sql(conn, "ROLLBACK TO group_commit")
            _savepoint_sql(conn, "RELEASE group_commit")
        except Exception:
            raise _BatchLost() from e
        return False, e
    _savepoint_sql(conn, "RELEASE group_commit")
    return True, value


def _savepoint_sql(conn: Connection, sql: str) -> None:
    """A savepoint statement on the sqlite3 connection itself: through ``exec_driver_sql`` a
    SAVEPOINT + RELEASE pair cost ~10x SQLite's own time (SQLAlchemy's execution context and
    cursor wrapping). The transaction's BEGIN and COMMIT stay SQLAlchemy's, which tracks them."""
    raw = conn.connection.dbapi_connection
    if not isinstance(raw, sqlite3.Connection):
        conn.exec_driver_sql(sql)
        return
    try:
        raw.execute(sql)
    except sqlite3.Error as e:
        raise DBAPIError.instance(sql, None, e, sqlite3.Error) from e


@dataclass
class Chain:
    """What a write's ``then`` hands on: ``before()`` (blocking, in a ``before_in`` thread), then
    the write ``fn`` (``after`` once it is committed); its outcome is the caller's answer."""
    before: Callable[[], Any]
    fn: Callable[[Connection], Any]
    after: Callable[[], None] | None = None


@dataclass
class _Op:
    fn: Callable[[Connection], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    after: Callable[[], None] | None = None
    then: Callable[[Any], Chain | None] | None = None
    before_in: Executor | None = None


class GroupCommitter:
    """Queues ``write`` calls for one writer thread that runs them in batches (``run``)."""

    def __init__(self, executor: Executor, run: Runner) -> None:
        self._executor = executor
        self._run = run
        self._pending: deque[_Op] = deque()
        self._lock = threading.Lock()
        self._draining = False

    async def submit(self, fn: Callable[[Connection], Any], after: Callable[[], None] | None = None,
                     before: Callable[[], Any] | None = None, before_in: Executor | None = None,
                     then: Callable[[Any], Chain | None] | None = None) -> Any:
        """``fn``'s value once the transaction that ran it is committed. ``after``: a small
        clean-up run in the writer thread once ``fn``'s work is committed and before its caller
        is answered (removing what the committed rows no longer name), so that it needs no
        thread hop of its own; its errors are logged, never raised (the commit stands).

        ``before``: blocking work that must be done before ``fn`` is queued (the verified write
        of the bytes ``fn`` names). It runs in a thread of ``before_in``, which then queues
        ``fn`` itself: the event loop is woken once, by the commit's answer, instead of once for
        ``before``'s result and once more for the commit's. If it raises, ``fn`` is not queued
        and the caller gets ``BeforeFailed``. Once started, both run whatever the caller does
        (as a queued write always did): bytes written are named, as they would have been.

        ``then``: called in the writer thread with ``fn``'s value once it is committed (quick: it
        only decides). None answers the caller with that value; a ``Chain`` goes on without the
        event loop (its ``before`` in a ``before_in`` thread, then its write) and the caller is
        answered with the chained write's outcome instead: a whole small push's PUT (its GC
        review, the verified put, the naming) wakes the loop once."""
        loop = asyncio.get_running_loop()
        op = _Op(fn, loop, loop.create_future(), after, then, before_in)
        if before is None:
            self._enqueue(op)
        else:
            assert before_in is not None
            before_in.submit(self._before_then_enqueue, before, op)  # RuntimeError once shut down
        return await op.future

    def _enqueue(self, op: _Op) -> None:
        with self._lock:
            self._pending.append(op)
            start, self._draining = not self._draining, True
        if start:
            try:
                self._executor.submit(self._drain)
            except RuntimeError:  # executor shut down (the database is closing)
                with self._lock:
                    self._draining = False
                    self._pending.remove(op)
                raise

    def _before_then_enqueue(self, before: Callable[[], Any], op: _Op) -> None:
        """In a ``before_in`` thread: ``before()``, then ``op`` goes to the writer from here."""
        try:
            before()
        except BaseException as e:
            _answer_one(op, BeforeFailed(e))
            return
        try:
            self._enqueue(op)
        except RuntimeError as e:
            _answer_one(op, e)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._draining = False
                    return
                batch = [self._pending.popleft() for _ in range(min(MAX_BATCH, len(self._pending)))]
            try:
                outcomes = self._run([op.fn for op in batch])
            except Exception as e:
                outcomes = [(False, e)] * len(batch)
            if len(outcomes) < len(batch):  # time budget spent: the rest go first next time
                with self._lock:
                    self._pending.extendleft(reversed(batch[len(outcomes):]))
                batch = batch[:len(outcomes)]
            answered: list[_Op] = []
            answers: list[Outcome] = []
            for op, outcome in zip(batch, outcomes):
                if outcome[0] and op.after is not None:
                    run_after(op.after)
                if outcome[0] and op.then is not None and self._chained(op, outcome[1]):
                    continue  # answered by the chained write
                answered.append(op)
                answers.append(outcome)
            self._answer(answered, answers)

    def _chained(self, op: _Op, value: Any) -> bool:
        """Start what ``op.then`` hands on; False when the caller is to be answered now (with
        ``value``). A ``then`` that raises answers the caller with its error."""
        assert op.then is not None
        try:
            chain = op.then(value)
            if chain is None:
                return False
            assert op.before_in is not None
            nxt = _Op(chain.fn, op.loop, op.future, chain.after)
            op.before_in.submit(self._before_then_enqueue, chain.before, nxt)
        except Exception as e:
            _answer_one(op, e)
        return True

    @staticmethod
    def _answer(batch: list[_Op], outcomes: list[Outcome]) -> None:
        """One wake-up per event loop for the whole batch, not one per caller."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Outcome]]] = {}
        for op, outcome in zip(batch, outcomes):
            by_loop.setdefault(op.loop, []).append((op.future, outcome))
        for loop, answers in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, answers)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass


def _answer_one(op: _Op, error: BaseException) -> None:
    try:
        op.loop.call_soon_threadsafe(_settle, [(op.future, (False, error))])
    except RuntimeError:  # that loop is closed: nobody is waiting any more
        pass


def run_after(after: Callable[[], None]) -> None:
    try:
        after()
    except Exception:
        log.warning("clean-up after a committed write failed", exc_info=True)


def _settle(answers: list[tuple[asyncio.Future, Outcome]]) -> None:
    for future, (ok, value) in answers:
        if future.done():  # the caller was cancelled; its work ran (or failed) regardless
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

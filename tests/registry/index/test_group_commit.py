"""Group commit on SQLite (registry/index/group_commit.py): the writes queued behind a busy
writer share one transaction and one COMMIT, each in its own savepoint; a failing function
fails only its caller; a transient conflict re-runs every function of the batch from scratch;
no caller is answered before the COMMIT that holds its work."""
from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from registry.index import Index, ManifestRecord, group_commit
from registry.index.database import Database


@pytest.fixture
async def db(tmp_path):
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'gc.db'}")
    await database.write(lambda conn: conn.execute(text("CREATE TABLE t (k TEXT PRIMARY KEY, v INT)")))
    yield database
    await database.close()


def trace(database: Database) -> list[str]:
    """Every statement SQLite runs on the writer's connection (a fresh one from now on)."""
    statements: list[str] = []
    database._writer.dispose()
    event.listen(database._writer, "connect", lambda dbapi, _rec: dbapi.set_trace_callback(statements.append))
    return statements


def commits(statements: list[str]) -> int:
    return sum(1 for s in statements if s.strip().upper() == "COMMIT")


def rows(database: Database) -> dict[str, int]:
    with sqlite3.connect(database._writer.url.database) as c:  # a separate connection: committed rows only
        return dict(c.execute("SELECT k, v FROM t"))


async def queued_behind_a_busy_writer(database: Database, fns):
    """Hold the writer thread in one write while ``fns`` are submitted, then let it go: the
    queued ones are taken together."""
    entered, release = threading.Event(), threading.Event()

    def blocker(conn):
        entered.set()
        release.wait(10)
        conn.execute(text("INSERT INTO t VALUES ('blocker', 0)"))

    first = asyncio.ensure_future(database.write(blocker))
    await asyncio.get_running_loop().run_in_executor(None, entered.wait, 10)
    tasks = [asyncio.ensure_future(database.write(fn)) for fn in fns]
    await asyncio.sleep(0.05)  # every task has queued its function
    release.set()
    await first
    return await asyncio.gather(*tasks, return_exceptions=True)


def insert(key: str, value: int):
    def fn(conn):
        conn.execute(text("INSERT INTO t VALUES (:k, :v)"), {"k": key, "v": value})
        return f"{key}={value}"
    return fn


async def test_queued_writes_share_one_commit_and_each_gets_its_own_result(db, monkeypatch):
    # the batch's time budget is its own test's subject: on a loaded machine 8 inserts can take
    # longer than 10 ms, and the batch would (rightly) split
    monkeypatch.setattr(group_commit, "BATCH_BUDGET_S", 10.0)
    statements = trace(db)
    seen_on_answer: list[bool] = []

    def insert_and_check(key, value):
        async def one():
            result = await db.write(insert(key, value))
            seen_on_answer.append(rows(db).get(key) == value)  # durable before the caller goes on
            return result
        return one

    entered, release = threading.Event(), threading.Event()

    def blocker(conn):
        entered.set()
        release.wait(10)

    first = asyncio.ensure_future(db.write(blocker))
    await asyncio.get_running_loop().run_in_executor(None, entered.wait, 10)
    tasks = [asyncio.ensure_future(insert_and_check(f"k{i}", i)()) for i in range(8)]
    for _ in range(500):  # until all 8 are queued behind the blocker, however slow the machine
        if len(db._committer._pending) == 8:
            break
        await asyncio.sleep(0.01)
    release.set()
    await first
    assert await asyncio.gather(*tasks) == [f"k{i}={i}" for i in range(8)]
    assert commits(statements) == 2  # the blocker alone, then the 8 queued ones together
    assert sum(s.startswith("SAVEPOINT") for s in statements) == 8
    assert seen_on_answer == [True] * 8
    assert rows(db) == {f"k{i}": i for i in range(8)}


async def test_a_lone_write_commits_at_once_without_savepoints(db):
    statements = trace(db)
    assert await asyncio.wait_for(db.write(insert("solo", 1)), 5) == "solo=1"
    assert commits(statements) == 1 and not any(s.startswith("SAVEPOINT") for s in statements)
    assert rows(db) == {"solo": 1}


async def test_a_failing_function_fails_only_its_caller_and_keeps_none_of_its_rows(db):
    statements = trace(db)

    def half_then_fail(conn):
        conn.execute(text("INSERT INTO t VALUES ('bad-row', 99)"))
        raise ValueError("this one is wrong")

    def duplicate(conn):  # an IntegrityError from the database itself, mid-batch
        conn.execute(text("INSERT INTO t VALUES ('a', 2)"))

    results = await queued_behind_a_busy_writer(db, [insert("a", 1), half_then_fail, insert("b", 2), duplicate,
                                                     insert("c", 3)])
    assert results[0] == "a=1" and results[2] == "b=2" and results[4] == "c=3"
    assert isinstance(results[1], ValueError) and str(results[1]) == "this one is wrong"
    assert "UNIQUE constraint failed" in str(results[3])
    assert commits(statements) == 2
    assert rows(db) == {"blocker": 0, "a": 1, "b": 2, "c": 3}


async def test_a_transient_conflict_reruns_every_function_of_the_batch_from_scratch(db):
    runs: dict[str, int] = {}
    locked_once = []

    def counted(key, value, conflict=False):
        def fn(conn):
            runs[key] = runs.get(key, 0) + 1
            conn.execute(text("INSERT INTO t VALUES (:k, :v)"), {"k": key, "v": value})
            if conflict and not locked_once:
                locked_once.append(1)
                raise OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))
            return value
        return fn

    results = await queued_behind_a_busy_writer(db, [counted("x", 1), counted("y", 2, conflict=True), counted("z", 3)])
    assert results == [1, 2, 3]
    # x and y ran, the batch was rolled back at y's conflict; all three ran again (z once, as it
    # had not started), and each row exists once: nothing of the failed attempt was kept.
    assert runs == {"x": 2, "y": 2, "z": 1}
    assert rows(db) == {"blocker": 0, "x": 1, "y": 2, "z": 3}


async def test_concurrent_manifest_puts_through_the_index_share_commits(tmp_path):
    idx = Index(f"sqlite+aiosqlite:///{tmp_path / 'index.db'}")
    try:
        await idx.migrate()
        statements = trace(idx.db)

        async def put(i: int):
            digest = f"sha256:{i:064x}"
            await idx.before_bytes(digest)
            await idx.put_manifest("r", ManifestRecord(digest=digest, media_type="m", size=i, tags=(f"t{i}",)))

        await asyncio.gather(*(put(i) for i in range(1, 33)))
        for i in range(1, 33):
            assert await idx.resolve_tag("r", f"t{i}") == (f"sha256:{i:064x}", "m", i)
        assert commits(statements) < 64  # 64 write transactions, fewer commits
    finally:
        await idx.close()


async def test_after_runs_in_the_writer_once_committed_and_its_failure_is_only_logged(db, caplog):
    seen: list[tuple[str, bool, dict]] = []

    def after(key):
        def run():
            seen.append((threading.current_thread().name, key, rows(db)))
            if key == "boom":
                raise OSError("clean-up failed")
        return run

    assert await db.write(insert("x", 1), after=after("x")) == "x=1"
    assert await db.write(insert("boom", 2), after=after("boom")) == "boom=2"  # the commit stands
    assert any("clean-up after a committed write failed" in r.getMessage() for r in caplog.records)

    def failing(conn):
        raise ValueError("no")

    with pytest.raises(ValueError):
        await db.write(failing, after=after("never"))
    assert [(key, committed) for _thread, key, committed in seen] == [("x", {"x": 1}), ("boom", {"x": 1, "boom": 2})]
    assert all(thread.startswith("index-write") for thread, _key, _rows in seen)


def _count_loop_wakes(monkeypatch) -> list[int]:
    """One entry per call_soon_threadsafe on the running loop: a worker thread waking it."""
    wakes: list[int] = []
    loop = asyncio.get_running_loop()
    real = type(loop).call_soon_threadsafe

    def counting(self, *a, **k):
        wakes.append(1)
        return real(self, *a, **k)
    monkeypatch.setattr(type(loop), "call_soon_threadsafe", counting)
    return wakes


async def test_before_runs_in_a_thread_that_queues_the_write_itself(db, monkeypatch):
    """``write(fn, before=)``: the blocking step runs off the loop and its thread queues ``fn``;
    the event loop is woken once (the commit's answer), not also for ``before``'s result."""
    seen: list[tuple[str, str, dict]] = []

    def before():
        seen.append(("before", threading.current_thread().name, rows(db)))

    def fn(conn):
        seen.append(("fn", threading.current_thread().name, rows(db)))
        return insert("y", 1)(conn)

    wakes = _count_loop_wakes(monkeypatch)
    assert await db.write(fn, before=before) == "y=1"
    monkeypatch.undo()
    assert [(what, thread.split("_")[0]) for what, thread, _ in seen] == [("before", "index-before"),
                                                                          ("fn", "index-write")]
    assert len(wakes) == 1
    assert rows(db) == {"y": 1}


async def test_a_failing_before_is_raised_as_it_is_and_queues_nothing(db):
    ran: list[str] = []

    def fn(conn):
        ran.append("fn")
        return insert("z", 1)(conn)

    for error in (OSError(28, "No space left on device"), ValueError("digest mismatch")):
        def before(error=error):
            raise error

        with pytest.raises(type(error)) as raised:
            await db.write(fn, before=before)
        assert raised.value is error  # not IndexUnavailable: a storage error is not the index's
    assert ran == [] and rows(db) == {}
    assert await db.write(fn) == "z=1"  # the writer is fine


async def test_a_write_conflict_after_before_reruns_only_the_write(db):
    """A retryable conflict makes ``Database.write`` run ``fn`` again; the bytes ``before`` wrote
    are written once."""
    befores, attempts = [], []

    def before():
        befores.append(1)

    def fn(conn):
        attempts.append(1)
        if len(attempts) == 1:
            raise OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))
        return insert("w", 1)(conn)

    assert await db.write(fn, before=before) == "w=1"
    assert len(befores) == 1 and len(attempts) == 2


async def test_then_chains_a_blocking_step_and_a_second_write_without_the_loop(db, monkeypatch):
    """``write(fn, then=)``: once ``fn`` is committed, ``then`` (in the writer) hands on a Chain:
    its step in an ``index-before`` thread, then its write; the caller gets that write's value,
    and the event loop is woken once for the three."""
    seen: list[tuple[str, str, dict]] = []

    def step():
        seen.append(("step", threading.current_thread().name, rows(db)))

    def then(value):
        seen.append(("then", threading.current_thread().name, rows(db)))
        return group_commit.Chain(step, insert("b", 2)) if value == "a=1" else None

    wakes = _count_loop_wakes(monkeypatch)
    assert await db.write(insert("a", 1), then=then) == "b=2"
    monkeypatch.undo()
    assert [(what, thread.split("_")[0], committed) for what, thread, committed in seen] == [
        ("then", "index-write", {"a": 1}), ("step", "index-before", {"a": 1})]
    assert len(wakes) == 1 and rows(db) == {"a": 1, "b": 2}
    assert await db.write(insert("c", 3), then=then) == "c=3"  # None: answered with fn's value


async def test_a_chained_step_that_fails_is_raised_and_its_write_never_runs(db):
    ran: list[str] = []

    def step():
        raise OSError(5, "Input/output error")

    def then(value):
        return group_commit.Chain(step, lambda conn: ran.append("chained"))

    with pytest.raises(OSError) as raised:
        await db.write(insert("a", 1), then=then)
    assert raised.value.errno == 5 and ran == []
    assert rows(db) == {"a": 1}  # the first write stands (committed before the step ran)


async def test_a_conflict_in_the_chained_write_reruns_the_whole_chain(db):
    calls: list[str] = []

    def first(conn):
        calls.append("first")
        return "first"

    def chained(conn):
        calls.append("chained")
        if calls.count("chained") == 1:
            raise OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))
        return insert("k", 1)(conn)

    def then(value):
        return group_commit.Chain(lambda: calls.append("step"), chained)

    assert await db.write(first, then=then) == "k=1"
    assert calls == ["first", "step", "chained", "first", "step", "chained"]

"""The event journal: whole lines from concurrent writers, bounded by rotation, followed across
a rotation; docker's filters; the CLI's time parsing and docker's line format."""
from __future__ import annotations

import json
import multiprocessing
import os
import time

import pytest

from node.cli import lifecycle
from node.engine import events

WRITERS, EACH = 4, 400


def _write_many(root: str, writer: int, count: int) -> None:
    for i in range(count):
        events.emit(root, "container", "start", f"{writer:064x}", {"seq": i, "pad": "x" * (writer * 50)})


def _run_writers(root, count: int) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_many, args=(str(root), w, count)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0


def test_concurrent_writers_never_tear_a_line(tmp_path):
    _run_writers(tmp_path, EACH)
    with open(events.journal_path(tmp_path), "rb") as f:
        lines = f.read().split(b"\n")
    assert lines[-1] == b""
    docs = [json.loads(line) for line in lines[:-1]]  # every line is one whole event
    assert len(docs) == WRITERS * EACH
    for w in range(WRITERS):
        seqs = [int(d["Actor"]["Attributes"]["seq"]) for d in docs if d["Actor"]["ID"] == f"{w:064x}"]
        assert seqs == list(range(EACH))  # each writer's events in its order
    assert events.history(tmp_path) == docs


def test_the_journal_is_bounded_and_followed_across_rotation(tmp_path, monkeypatch):
    monkeypatch.setattr(events, "MAX_BYTES", 8 << 10)
    follower = events.Follower(tmp_path)  # made before the journal exists
    seen = []
    for i in range(300):
        events.emit(tmp_path, "container", "die", "c" * 64, {"seq": i})
        if i % 10 == 0:
            seen += follower.poll()
    seen += follower.poll()
    follower.close()
    assert [int(d["Actor"]["Attributes"]["seq"]) for d in seen] == list(range(300))
    files = sorted(os.listdir(events.journal_dir(tmp_path)))
    assert [f for f in files if not f.endswith(".lock")] == ["journal.jsonl", "journal.jsonl.1"]
    for name in ("journal.jsonl", "journal.jsonl.1"):
        assert os.path.getsize(os.path.join(events.journal_dir(tmp_path), name)) <= (8 << 10) + 400
    kept = [int(d["Actor"]["Attributes"]["seq"]) for d in events.history(tmp_path)]
    assert kept == list(range(kept[0], 300)) and kept[0] > 0  # the oldest went, the newest stayed


def test_concurrent_writers_with_rotation_keep_whole_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(events, "MAX_BYTES", 16 << 10)
    _run_writers(tmp_path, EACH)
    for name in ("journal.jsonl", "journal.jsonl.1"):
        path = os.path.join(events.journal_dir(tmp_path), name)
        if name == "journal.jsonl" and not os.path.exists(path):
            continue  # the last write rotated (about 1 run in 50): the next writer makes it anew
        with open(path, "rb") as f:
            for line in f:
                json.loads(line)


def test_a_torn_or_foreign_line_is_skipped(tmp_path):
    events.emit(tmp_path, "container", "create", "a" * 64)
    with open(events.journal_path(tmp_path), "ab") as f:
        f.write(b'not json\n{"Type": "container"}\n{"half": ')
    assert [d["Action"] for d in events.history(tmp_path)] == ["create"]


@pytest.mark.parametrize("wanted, hit", [
    ({"type": ["container"]}, True), ({"type": ["image"]}, False),
    ({"event": ["die"]}, True), ({"event": ["start", "die"]}, True), ({"event": ["start"]}, False),
    ({"container": ["web"]}, True), ({"container": ["abc"]}, True), ({"container": ["other"]}, False),
    ({"image": ["busybox"]}, True), ({"image": ["busybox:latest"]}, True), ({"image": ["alpine"]}, False),
    ({"label": ["tier=front"]}, True), ({"label": ["tier"]}, True), ({"label": ["tier=back"]}, False),
    ({"label": ["tier", "nosuch"]}, False), ({"type": ["container"], "event": ["kill"]}, False),
])
def test_filters_as_docker_reads_them(wanted, hit):
    doc = events.make_event("container", "die", "abc" + "0" * 61,
                            {"name": "web", "image": "busybox:latest", "tier": "front", "exitCode": 0})
    assert events.matches(doc, wanted) is hit


def test_docker_event_line_and_times(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    doc = events.make_event("container", "kill", "f" * 64, {"signal": 15, "name": "web", "image": "bb"},
                            now_ns=1_700_000_000_123_456_789)
    assert lifecycle.event_line(doc) == (
        "2023-11-14T22:13:20.123456789Z container kill " + "f" * 64 + " (image=bb, name=web, signal=15)")
    assert doc["status"] == "kill" and doc["id"] == "f" * 64 and doc["from"] == "bb"
    now = 1_700_000_000 * 10**9
    assert lifecycle.parse_time("1700000000.5", now) == now + 500_000_000
    assert lifecycle.parse_time("10m", now) == now - 600 * 10**9
    assert lifecycle.parse_time("1h30m", now) == now - 5400 * 10**9
    assert lifecycle.parse_time("2023-11-14T22:13:20Z", now) == now
    assert lifecycle.parse_time("2023-11-14T22:13:20", now) == now  # local time: UTC here
    with pytest.raises(lifecycle.CliError):
        lifecycle.parse_time("yesterday", now)
    monkeypatch.undo()
    time.tzset()


def test_a_prepared_start_line_is_the_line_emit_writes(tmp_path, monkeypatch):
    """The slim monitor writes `run -d`'s "start" from events.prepared_line plus the time
    (node/engine/shim.py): the same bytes as container_event would have written."""
    from types import SimpleNamespace
    from node.engine import shim
    cdir = tmp_path / "containers" / ("c1" * 32)
    cdir.mkdir(parents=True)
    os.makedirs(events.journal_dir(tmp_path))  # `create` wrote its event before
    (cdir / "container.json").write_text(json.dumps(
        {"Name": "web", "Config": {"Image": "busybox", "Labels": {"a": "b\"\u00e9"}}}))
    container = SimpleNamespace(root=tmp_path, dir=cdir, id="c1" * 32)
    prefix = events.prepared_line(container, "start")
    r, w = os.pipe()
    os.write(w, prefix)
    os.close(w)
    monkeypatch.setattr(time, "time_ns", lambda: 1_700_000_000_123_456_789)
    shim._start_event(str(tmp_path), container.id, shim._take_prepared(f"{r}:{events.MAX_BYTES}"))
    events.container_event(container, "start")
    with open(events.journal_path(tmp_path), "rb") as f:
        first, second = f.read().splitlines()
    assert first == second and json.loads(first)["Actor"]["Attributes"]["a"] == "b\"\u00e9"

"""Per-layer progress for pull and push: rich bars on a terminal, docker-like lines otherwise."""
from __future__ import annotations

import sys
from typing import TextIO


def line_writer(out: TextIO | None, quiet: bool = False):
    """``say(line)`` for the docker-like status lines of pull and push: nothing when quiet, and
    once the reader of ``out`` has gone away (``| head``), nothing more — the work goes on."""
    closed = quiet or out is None

    def say(line: str) -> None:
        nonlocal closed
        if closed:
            return
        try:
            print(line, file=out, flush=True)
        except BrokenPipeError:
            closed = True
    return say


class Progress:
    """Silent base: what ``--quiet`` and library callers get."""

    def add(self, key: str, total: int, status: str) -> None: ...
    def update(self, key: str, done: int, status: str | None = None) -> None: ...
    def finish(self, key: str, status: str) -> None: ...
    def close(self) -> None: ...


class LineProgress(Progress):
    """One line per phase change, as `docker pull` prints when not on a terminal."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.status: dict[str, str] = {}

    def add(self, key: str, total: int, status: str) -> None:
        self._say(key, status)

    def update(self, key: str, done: int, status: str | None = None) -> None:
        if status and self.status.get(key) != status:
            self._say(key, status)

    def finish(self, key: str, status: str) -> None:
        self._say(key, status)

    def _say(self, key: str, status: str) -> None:
        self.status[key] = status
        if self.out is None:
            return
        try:
            print(f"{key}: {status}", file=self.out, flush=True)
        except BrokenPipeError:
            # `dockyard pull IMG | head`: the reader left; the pull itself goes on to the end.
            self.out = None


class BarProgress(Progress):
    def __init__(self, out: TextIO = sys.stdout) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress as RichProgress, TextColumn, TransferSpeedColumn

        self.bars = RichProgress(TextColumn("{task.fields[key]}: {task.description:<18}"), BarColumn(),
                                 DownloadColumn(), TransferSpeedColumn(), transient=False,
                                 console=Console(file=out))
        self.tasks: dict[str, int] = {}
        self.bars.start()

    def add(self, key: str, total: int, status: str) -> None:
        done = total if status.endswith("exists") else 0
        self.tasks[key] = self.bars.add_task(status, total=total or None, completed=done, key=key)

    def update(self, key: str, done: int, status: str | None = None) -> None:
        kw = {"description": status} if status else {}
        self.bars.update(self.tasks[key], completed=done, **kw)

    def finish(self, key: str, status: str) -> None:
        task = self.tasks[key]
        total = self.bars.tasks[[t.id for t in self.bars.tasks].index(task)].total
        self.bars.update(task, description=status, completed=total or 1, total=total or 1)

    def close(self) -> None:
        self.bars.stop()


def for_terminal(quiet: bool, out: TextIO = sys.stdout) -> Progress:
    if quiet:
        return Progress()
    return BarProgress(out) if out.isatty() else LineProgress(out)

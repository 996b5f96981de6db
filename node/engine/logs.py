"""Container output in Docker's json-file format: one JSON object per line,
{"log": "<text including its newline>", "stream": "stdout"|"stderr", "time": "<RFC 3339 nano>"}.
Lines longer than 16 KiB are split, as Docker does; a partial last line is written at close."""
from __future__ import annotations

import os
import time

try:  # the encoder json.dumps uses, without the json package (re and 0.4 MiB in every monitor)
    from _json import encode_basestring_ascii as _quote
except ImportError:  # pragma: no cover - CPython always has _json
    from json.encoder import py_encode_basestring_ascii as _quote

MAX_LINE = 16 * 1024


def _timestamp() -> str:
    now = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(now // 1_000_000_000)) + f"{now % 1_000_000_000:09d}Z"


class LogWriter:
    """Used by one writer at a time: the monitor's single loop."""

    def __init__(self, path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._pending: dict[str, bytes] = {}

    def write(self, stream: str, data: bytes) -> None:
        buf = self._pending.get(stream, b"") + data
        lines = []
        while True:
            cut = buf.find(b"\n")
            if cut < 0:
                if len(buf) >= MAX_LINE:
                    lines.append(buf[:MAX_LINE])
                    buf = buf[MAX_LINE:]
                    continue
                break
            lines.append(buf[:cut + 1])
            buf = buf[cut + 1:]
        self._pending[stream] = buf
        self._emit(stream, lines)

    def _emit(self, stream: str, lines: list[bytes]) -> None:
        if not lines:
            return
        stamp = _timestamp()
        tail = f', "stream": {_quote(stream)}, "time": {_quote(stamp)}}}\n'
        # byte for byte what json.dumps({"log": ..., "stream": ..., "time": ...}) writes
        out = "".join(f'{{"log": {_quote(line.decode("utf-8", "replace"))}{tail}' for line in lines)
        os.write(self._fd, out.encode())

    def close(self) -> None:
        for stream, buf in self._pending.items():
            if buf:
                self._emit(stream, [buf])
        self._pending.clear()
        os.close(self._fd)


def read_entries(path, tail: int | None = None) -> tuple[list[dict], int]:
    """The log's entries (the last `tail` if given) and the byte offset where reading stopped."""
    import json
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return [], 0
    end = data.rfind(b"\n") + 1
    lines = data[:end].splitlines()
    if tail is not None and tail >= 0:
        lines = lines[-tail:] if tail else []
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries, end


def follow(path, offset: int, still_running, poll: float = 0.1):
    """Yield entries appended after `offset` until the container stops and the file is drained."""
    import json
    while True:
        running = still_running()
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        for line in data[:end].splitlines():
            try:
                yield json.loads(line)
            except ValueError:
                continue
        offset += end
        if not running:
            return
        time.sleep(poll)

"""The report pipe: how a forked helper tells its parent whether it got where it was going.

One format everywhere (the built-in runtime's init, the exec helper, the detached monitor):
  b"E<code> <message>"   it failed; <code> is the exit status the command should return
  b"R"                   (init only) set-up done, waiting for `start`
  b"OK"                  (monitor only) the container's program runs
  EOF, nothing written   the pipe was close-on-exec and the program was exec'd
The writer side never raises: a parent that went away has nobody to tell.
"""
from __future__ import annotations

import os


def send(fd: int, data: bytes) -> None:
    try:
        os.write(fd, data)
    except OSError:
        pass


def send_error(fd: int, code: int, message: object) -> None:
    send(fd, f"E{code} {message}".encode())


def read_all(fd: int, chunk_size: int = 4096) -> bytes:
    """Everything ``fd`` gives until EOF (a pipe's report, or a small file's bytes)."""
    chunks = []
    while True:
        chunk = os.read(fd, chunk_size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def parse_error(report: bytes, default_code: int = 125) -> tuple[int, str] | None:
    """(exit code, message) of an error report, None if `report` is not one."""
    if not report.startswith(b"E"):
        return None
    code, _, message = report[1:].decode(errors="replace").partition(" ")
    return (int(code) if code.isdigit() else default_code), message

"""The node's one atomic file write: a temp file beside the target, then rename, so a reader
sees the old content or the new, never half. `durable` adds the fsyncs that make the new
content survive a power cut (the file's, and with `durable_dir` the directory's: the image
store); the network records fsync the file only; the container records on `run`'s path skip
both — they are rewritten at every start and a lost update reads as "exited"."""
from __future__ import annotations

import json
import os


def write_atomic(path: str | Path, data: bytes, durable: bool = False, mode: int | None = None,
                 durable_dir: bool = False) -> None:
    from pathlib import Path  # here: `ps` imports this module and never writes
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644 if mode is None else mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        if mode is not None:
            os.chmod(tmp, mode)  # whatever the umask said
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable_dir:
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json(path: str | Path, doc: object, durable: bool = False, **dump_options) -> None:
    options = {"indent": 1, **dump_options}
    write_atomic(path, json.dumps(doc, **options).encode(), durable=durable)

"""One line appended to the events journal: the one write that both writers share.

node/engine/events.py (the agent) and node/engine/shim.py (the slim monitor, which must not
import json or events' other imports: its PSS is per running container) append the same way:
one O_APPEND write of a whole line, so concurrent writers never interleave inside a line.
"""
import os

_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


def append_line(path: str, line: bytes, make_dir: bool = True) -> int | None:
    """Append ``line``; the journal's size after it (0 when the write failed), or None when
    the journal could not be opened. An event never fails the operation it reports."""
    try:
        fd = os.open(path, _FLAGS, 0o600)
    except FileNotFoundError:
        if not make_dir:
            return None
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            fd = os.open(path, _FLAGS, 0o600)
        except OSError:
            return None
    except OSError:
        return None
    try:
        os.write(fd, line)
        return os.fstat(fd).st_size
    except OSError:
        return 0
    finally:
        os.close(fd)

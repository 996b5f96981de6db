"""The engine API's door to a container's attach socket (node/engine/attach.py): connect as a
client, resize its pty, and the detach keys as the daemon reads them."""
from __future__ import annotations

from node.api.errors import ApiError, bad_request


def attach_connect(container, stdin: bool, stdout: bool, stderr: bool):
    """A blocking socket attached to the running container's monitor, or None if none listens."""
    from node.engine import attach
    try:
        return attach.connect(container.dir, {"stdin": stdin, "stdout": stdout, "stderr": stderr})
    except ConnectionError:
        return None


def attach_resize(container, rows: int, cols: int) -> None:
    from node.engine import attach
    if rows <= 0 or cols <= 0:
        return
    try:
        attach.resize(container.dir, rows, cols)
    except ConnectionError:
        raise ApiError(409, f"Container {container.id} is not running") from None


def detach_scanner(spec: str | None):
    """The daemon's default is ctrl-p,ctrl-q (the client sends its own config's keys)."""
    from node.engine import EngineError, detachkeys
    try:
        return detachkeys.DetachScanner(detachkeys.parse(spec or detachkeys.DEFAULT))
    except EngineError as e:
        raise bad_request(str(e)) from None


def attach_frames():
    """The attach socket's codec: (encode, FrameReader, kinds)."""
    from node.engine import attach
    return attach

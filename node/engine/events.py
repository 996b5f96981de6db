"""The node's event journal: what happened to containers, images, networks and volumes, as
docker's event objects, for `dockyard events` and the engine API's ``/events``.

There is no daemon to hold a ring of recent events: every command that changes something
appends one JSON line to ``ROOT/events/journal.jsonl``. Each line is written with one
``write`` on an ``O_APPEND`` descriptor, so concurrent writers (the CLI, monitors, the API)
never interleave inside a line. The journal is bounded: a writer that finds it past MAX_BYTES
renames it to ``journal.jsonl.1`` (replacing the older generation) under a flock, so at most
two generations exist; readers read ``.1`` then the current file, and a follower that sees the
file replaced drains the old one before it opens the new one.

An event never fails the operation it reports: a journal that cannot be written is skipped.
This module imports only the standard library's cheapest parts: `dockyard run` writes three
events (create, start, die) and must not pay for more.
"""
from __future__ import annotations

import json
import os
import time

from node.engine.journalfile import append_line

JOURNAL = "journal.jsonl"
MAX_BYTES = 4 << 20
_LINE_LIMIT = 64 << 10  # a line longer than this is not an event of ours: skipped when read


def journal_dir(root) -> str:
    return os.path.join(os.fspath(root), "events")


def journal_path(root) -> str:
    return os.path.join(journal_dir(root), JOURNAL)


def make_event(kind: str, action: str, actor_id: str, attributes: dict | None = None,
               now_ns: int | None = None) -> dict:
    """docker's events.Message, with the deprecated status/id/from a container event carries."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    attributes = {str(k): str(v) for k, v in (attributes or {}).items()}
    doc: dict = {}
    if kind == "container" or (kind == "image" and action not in ("delete", "untag")):
        doc["status"] = action
        doc["id"] = actor_id
        if kind == "container" and "image" in attributes:
            doc["from"] = attributes["image"]
    doc.update({"Type": kind, "Action": action, "Actor": {"ID": actor_id, "Attributes": attributes},
                "scope": "local", "time": now_ns // 1_000_000_000, "timeNano": now_ns})
    return doc


def emit(root, kind: str, action: str, actor_id: str, attributes: dict | None = None) -> dict:
    doc = make_event(kind, action, actor_id, attributes)
    _append(journal_path(root), (json.dumps(doc, separators=(",", ":")) + "\n").encode())
    return doc


def _append(path: str, line: bytes) -> None:
    size = append_line(path, line)
    if size is not None and size > MAX_BYTES:
        _rotate(path)


def _rotate(path: str) -> None:
    import fcntl
    try:
        lock = os.open(path + ".lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:  # another writer may have rotated while we waited
            if os.stat(path).st_size > MAX_BYTES:
                os.replace(path, path + ".1")
        except OSError:
            pass
    finally:
        os.close(lock)


def container_event(container, action: str, **extra) -> dict:
    """An event about ``container`` with docker's attributes: its labels, image and name."""
    return emit(container.root, "container", action, container.id, _container_attributes(container, extra))


def _container_attributes(container, extra: dict) -> dict:
    """The record is read again as plain JSON (a monitor's typed copy predates any rename; the
    typed parse would cost ~0.25 ms of every `run`)."""
    try:
        with open(os.path.join(container.dir, "container.json"), "rb") as f:
            doc = json.load(f)
    except FileNotFoundError:  # removed: what the caller read before is the last word
        doc = container.meta if getattr(container, "_spec", None) is not None else {}
    except (OSError, ValueError):
        doc = {}
    config = doc.get("Config") or {}
    attributes = {**(config.get("Labels") or {}), "image": config.get("Image") or doc.get("ImageRef", ""),
                  "name": doc.get("Name", "")} if doc else {}
    attributes.update(extra)
    return attributes


def prepared_line(container, action: str) -> bytes:
    """container_event's journal line but for its time: the bytes up to the closing brace, for a
    process that writes the event later without json (node/engine/shim.py). make_event puts
    "time" and "timeNano" last, so that writer appends them and the brace: the same line."""
    doc = make_event("container", action, container.id, _container_attributes(container, {}), now_ns=0)
    del doc["time"], doc["timeNano"]
    return json.dumps(doc, separators=(",", ":")).encode()[:-1]


# -- reading --------------------------------------------------------------------------------

def _parse(line: bytes) -> dict | None:
    if not line.endswith(b"\n") or len(line) > _LINE_LIMIT:
        return None
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and "timeNano" in doc else None


def history(root) -> list[dict]:
    """Every event still in the journal, oldest first."""
    out = []
    path = journal_path(root)
    for name in (path + ".1", path):
        try:
            with open(name, "rb") as f:
                for line in f:
                    doc = _parse(line)
                    if doc is not None:
                        out.append(doc)
        except FileNotFoundError:
            continue
    return out


class Follower:
    """New events as they are appended: ``poll()`` returns those written since the last call
    (none before the follower was made). Survives rotation: the old file is drained first."""

    def __init__(self, root) -> None:
        self.path = journal_path(root)
        self._f = None
        self._ino = None
        self._partial = b""
        self._open(at_end=True)

    def _open(self, at_end: bool) -> None:
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            self._f, self._ino = None, None
            return
        st = os.fstat(f.fileno())
        if at_end:
            f.seek(st.st_size)
        self._f, self._ino = f, st.st_ino

    def _drain(self) -> list[dict]:
        if self._f is None:
            return []
        data = self._partial + self._f.read()
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an unfinished last line waits for the rest
        out = []
        for line in lines:
            doc = _parse(line + b"\n")
            if doc is not None:
                out.append(doc)
        return out

    def poll(self) -> list[dict]:
        out = self._drain()
        try:
            ino = os.stat(self.path).st_ino
        except FileNotFoundError:
            ino = None
        if ino is not None and ino != self._ino:  # rotated (or made): read the new file whole
            if self._f is not None:
                self._f.close()
            self._partial = b""
            self._open(at_end=False)
            out += self._drain()
        return out

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


# -- selection (shared by the CLI and the API) ------------------------------------------------

FILTER_KEYS = ("container", "event", "image", "label", "type", "network", "volume", "scope")


def matches(doc: dict, wanted: dict[str, list[str]]) -> bool:
    """docker's event filters: values of one key are alternatives, keys must all match."""
    actor = doc.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    kind, actor_id = doc.get("Type", ""), actor.get("ID", "")
    for key, values in wanted.items():
        if not values:
            continue
        if key == "type" and kind not in values:
            return False
        if key == "event" and not any(doc.get("Action") == v or (doc.get("Action") or "").split(":")[0] == v
                                      for v in values):
            return False
        if key == "scope" and doc.get("scope", "local") not in values:
            return False
        # docker's container/network/volume filters: the actor's ID prefix or name, any type
        if key in ("container", "network", "volume") and not _names(actor_id, attrs, values):
            return False
        if key == "image":  # docker's matchImage: the ID or the name, with or without the tag
            name = attrs.get("name" if kind == "image" else "image", "")
            if not {actor_id, name, _strip_tag(actor_id), _strip_tag(name)} & set(values):
                return False
        if key == "label" and not all(_label(attrs, v) for v in values):
            return False
    return True


def _names(actor_id: str, attrs: dict, values: list[str]) -> bool:
    return any(v and (actor_id.startswith(v) or v == attrs.get("name")) for v in values)


def _strip_tag(ref: str) -> str:
    head, sep, tail = ref.rpartition(":")
    return head if sep and "/" not in tail and "@" not in ref else ref


def _label(attrs: dict, selector: str) -> bool:
    key, sep, value = selector.partition("=")
    return key in attrs and (not sep or attrs[key] == value)

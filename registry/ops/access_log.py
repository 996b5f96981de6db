"""The access log: one line per request on stderr, as text or JSON (``log_format``).

Keys (JSON; text prints the same values in this order): request_id, client, user, method,
route, repository, status, bytes, duration_ms. Only these: never a header, a query string, a
password or a token (the route is the route's name, the repository the URL's name part).
"""
from __future__ import annotations

import json
import logging
import sys
from typing import Any

KEYS = ("request_id", "client", "user", "method", "route", "repository", "status", "bytes", "duration_ms")


class _OwnHandler(logging.StreamHandler):
    """The access log's stderr handler (a class of its own, so ``write_line`` can tell it is the
    only thing a line would go through)."""


def make_access_logger(log_format: str) -> logging.Logger:
    """A logger of its own with one stderr handler, so the access log stays one line per request
    whatever the application's logging configuration."""
    logger = logging.getLogger(f"registry.access.{log_format}")
    if not logger.handlers:
        handler = _OwnHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def write_line(logger: logging.Logger, line: str) -> None:
    """``logger.info(line)``; when the line would only reach our own handler (nothing added,
    nothing propagated, no filters), written to its stream directly: a LogRecord per request
    (time, pid, thread, the handler's lock) was most of the access log's cost (profile)."""
    handlers = logger.handlers
    if (not logger.propagate and len(handlers) == 1 and type(handlers[0]) is _OwnHandler and not logger.filters
            and not handlers[0].filters and handlers[0].level <= logging.INFO and not logger.disabled
            and logger.isEnabledFor(logging.INFO)):
        stream = handlers[0].stream
        try:
            stream.write(line + "\n")
            stream.flush()
        except Exception:  # as logging does: a broken stderr must not fail the request
            pass
        return
    logger.info(line)


def format_line(entry: dict[str, Any], log_format: str) -> str:
    if log_format == "json":
        return json.dumps({k: entry.get(k) for k in KEYS}, separators=(",", ":"))
    values = []
    for key in KEYS:
        value = entry.get(key)
        values.append("-" if value in (None, "") else str(value).replace(" ", "%20"))
    return " ".join(values)

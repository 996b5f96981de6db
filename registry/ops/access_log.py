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


def make_access_logger(log_format: str) -> logging.Logger:
    """A logger of its own with one stderr handler, so the access log stays one line per request
    whatever the application's logging configuration."""
    logger = logging.getLogger(f"registry.access.{log_format}")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def format_line(entry: dict[str, Any], log_format: str) -> str:
    if log_format == "json":
        return json.dumps({k: entry.get(k) for k in KEYS}, separators=(",", ":"))
    values = []
    for key in KEYS:
        value = entry.get(key)
        values.append("-" if value in (None, "") else str(value).replace(" ", "%20"))
    return " ".join(values)

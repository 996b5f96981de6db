"""The last error runc or crun wrote to its JSON log (`--log F --log-format json`), since an offset.

Shared by the runc/crun driver (ocicli.py) and the slim monitor (node/engine/shim.py), which
imports only the standard library: keep this module free of other imports.
"""
from __future__ import annotations


def last_error(log: str, since: int) -> str:
    """The `msg` of the newest error/fatal line written after byte `since`, or ""."""
    import json  # lazily: the shim pays for json only when a start failed

    try:
        with open(log, "rb") as f:
            f.seek(since)
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
            return str(entry.get("msg", ""))
    return ""

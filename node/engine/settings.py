"""The node's own settings: ROOT/node.json (or the file $DOCKYARD_NODE_CONFIG names), read by
`create`. Every key is optional; a missing file means every default. Documented in
deploy/node.example.json.

    default-pids-limit   processes a container may have when `run` gives no --pids-limit
                         (DEFAULT_PIDS_LIMIT; 0 or -1: no limit, which is Docker's default).
                         --pids-limit N overrides it per container; --pids-limit -1 lifts it.

A bad file is one readable error line, not a traceback; nothing is created from it."""
from __future__ import annotations

import json
import os
from pathlib import Path

from node.engine import EngineError

FILE_NAME = "node.json"
# a fork bomb in one container must not take the node's PID space: podman's default is 2048,
# this leaves room for busy servers (Docker and runc default to no limit at all)
DEFAULT_PIDS_LIMIT = 4096
KNOWN = {"default-pids-limit"}


class NodeSettings:
    def __init__(self, default_pids_limit: int = DEFAULT_PIDS_LIMIT) -> None:
        self.default_pids_limit = default_pids_limit


def path_for(root) -> Path:
    return Path(os.environ.get("DOCKYARD_NODE_CONFIG") or Path(root) / FILE_NAME)


def load(root) -> NodeSettings:
    path = path_for(root)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return NodeSettings()
    except OSError as e:
        raise EngineError(f"node settings {path}: {e.strerror}", 125) from None
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise EngineError(f"node settings {path}: not JSON ({e})", 125) from None
    if not isinstance(doc, dict):
        raise EngineError(f"node settings {path}: must be a JSON object", 125)
    unknown = sorted(set(doc) - KNOWN)
    if unknown:
        raise EngineError(f"node settings {path}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(KNOWN))})", 125)
    limit = doc.get("default-pids-limit", DEFAULT_PIDS_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < -1:
        raise EngineError(f"node settings {path}: default-pids-limit must be an integer >= -1, not {limit!r}", 125)
    return NodeSettings(default_pids_limit=limit)

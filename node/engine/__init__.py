"""Containers as records on disk, and their lifecycle: one verb per module (create, start, stop,
remove, pause, exec_, wait, inspect), a monitor process per running container, and the OCI bundle
writer that hands a container to a runtime (node.runtime.builtin, runc or crun).

Records live under ROOT/containers/<id>/ (drawn in node/engine/records.py).
"""
from __future__ import annotations

from node.errors import ExitCodeError

# The network a container joins when `run` is not given --network. "none" and "host" are handled
# by the engine itself; any other value goes to node.network.api (attach/detach).
DEFAULT_NETWORK = "bridge"


class EngineError(ExitCodeError):
    """A failure with the docker-like exit status the CLI should return."""

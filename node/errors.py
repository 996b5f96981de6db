"""The one error shape the node's layers share: a message and the docker-like exit status the
command line returns for it (125: the agent failed; 126: cannot execute; 127: not found)."""
from __future__ import annotations


class ExitCodeError(Exception):
    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.exit_code = exit_code

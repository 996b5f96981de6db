"""What every command group shares: the error type that becomes one line on stderr."""
from __future__ import annotations

import os
import sys

from node.errors import ExitCodeError

DEFAULT_ROOT = "/var/lib/dockyard"


class CliError(ExitCodeError):
    """A failure to report as `Error: <message>` with a docker-like exit status (1 by default)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message, exit_code)


def engine_errors(func):
    """A command handler whose EngineError becomes the one-line CliError, with its exit status."""
    def handler(args):
        from node.engine import EngineError
        try:
            return func(args)
        except EngineError as e:
            raise CliError(str(e), e.exit_code) from None
    return handler


def terminal_columns() -> int:
    """shutil.get_terminal_size().columns, without importing shutil (bz2, lzma, zlib...) on
    every start: argparse asks for it once per add_argument."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80

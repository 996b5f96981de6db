"""The `dockyard` command line: parse arguments, call the library, print. No logic of its own.

Each group of commands lives in a module of node/cli/ exposing ``register(subparsers)``; a
handler is ``func(args) -> int``. Failures are raised as ``node.cli.common.CliError`` (or any
exception the handler maps to one) and printed as one readable line.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from node.cli.common import CliError, DEFAULT_ROOT

COMMAND_MODULES = ("node.cli.images", "node.cli.containers", "node.cli.network")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dockyard", description="Pull images and run containers.")
    parser.add_argument(
        "--root",
        default=os.environ.get("DOCKYARD_ROOT", DEFAULT_ROOT),
        help="directory for all state (default: $DOCKYARD_ROOT or %(default)s)",
    )
    parser.add_argument("--debug", action="store_true", help="print tracebacks on failure")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # that command group is not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except CliError as e:
        print(f"Error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # one readable line, never a traceback, unless --debug
        if args.debug:
            raise
        print(f"Error: {e.__class__.__name__}: {e}", file=sys.stderr)
        return 125


if __name__ == "__main__":
    sys.exit(main())

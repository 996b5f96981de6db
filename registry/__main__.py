"""The ``dockyard-registry`` command line: parse arguments, call the library. No logic here.

Commands come from the modules in ``COMMAND_MODULES`` (registry/commands/); each exposes
``register(subparsers)``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from registry.config import ConfigError

COMMAND_MODULES = ("registry.commands.serve", "registry.commands.gc", "registry.lifecycle.cli", "registry.commands.users")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dockyard-registry", description="An OCI registry with a SQL index.")
    parser.add_argument("--debug", action="store_true", help="print tracebacks on failure")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        if args.debug:
            raise
        print(f"error: {e.__class__.__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

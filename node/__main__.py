"""The `dockyard` command line: parse arguments, call the library, print. No logic of its own.

Each group of commands lives in a module of node/cli/ exposing ``register(subparsers)``; a
handler is ``func(args) -> int``. Failures are raised as ``node.cli.common.CliError`` (or any
exception the handler maps to one) and printed as one readable line.
"""
from __future__ import annotations

import os
import sys

from node import __version__
from node.cli.common import DEFAULT_ROOT, CliError

# Annotations only (postponed): `ps`, `images` and `run` never import argparse (node/cli/quickargs.py,
# node/cli/quickrun.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

COMMAND_MODULES = ("node.cli.images", "node.cli.imagetools", "node.cli.containers", "node.cli.network",
                   "node.cli.transfer", "node.cli.build", "node.cli.system",
                   "node.cli.prune", "node.cli.monitoring", "node.cli.engine", "node.cli.lifecycle")

# Which module registers each top-level command. Building every group's parser costs ~15 ms
# (the images group alone ~10), so a plain `dockyard run ...` registers only its owner's group.
# tests/node/test_cli_dispatch.py checks this map against what the modules really register.
COMMAND_OWNERS = {
    **dict.fromkeys(("image", "pull", "push", "tag", "images", "rmi", "save", "load", "login",
                     "logout"), "node.cli.images"),
    **dict.fromkeys(("run", "create", "ps", "start", "pause", "unpause", "wait", "stop", "restart",
                     "kill", "rm", "logs", "exec", "inspect", "container", "volume", "attach"),
                    "node.cli.containers"),
    **dict.fromkeys(("network", "port"), "node.cli.network"),
    **dict.fromkeys(("search", "history"), "node.cli.imagetools"),
    **dict.fromkeys(("cp", "diff", "export"), "node.cli.transfer"),
    "system": "node.cli.prune",
    **dict.fromkeys(("top", "stats"), "node.cli.monitoring"),
    **dict.fromkeys(("version", "info", "completion"), "node.cli.system"),
    **dict.fromkeys(("build", "builder"), "node.cli.build"),
    "engine": "node.cli.engine",
    **dict.fromkeys(("rename", "commit", "import", "update", "events"), "node.cli.lifecycle"),
}


GC_YOUNG_THRESHOLD = 20_000  # allocations between collections of the young generation (main())


def requested_command(argv: list[str]) -> str | None:
    """The top-level command in ``argv`` when it can be told without argparse, else None.

    Only the global options spelt out in full are skipped; anything else before the command
    (--help, an abbreviation argparse would accept, a typo) means None: build the full parser.
    """
    it = iter(argv)
    for token in it:
        if token == "--root":
            next(it, None)
        elif token.startswith("--root=") or token == "--debug":
            continue
        elif token.startswith("-"):
            return None
        else:
            return token if token in COMMAND_OWNERS else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for every command, or (``command`` given) only for that command."""
    import importlib

    from node.cli.argparsing import HelpFormatter, OneCommand, Parser, untranslated_argparse
    untranslated_argparse()
    parser = Parser(prog="dockyard", description="Pull images and run containers.",
                    formatter_class=HelpFormatter)
    parser.add_argument(
        "--root",
        default=os.environ.get("DOCKYARD_ROOT", DEFAULT_ROOT),
        help="directory for all state (default: $DOCKYARD_ROOT or %(default)s)",
    )
    parser.add_argument("--debug", action="store_true", help="print tracebacks on failure")
    parser.add_argument("-v", "--version", action="version", version=f"Dockyard version {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    modules = COMMAND_MODULES
    if command in COMMAND_OWNERS:
        modules, sub = (COMMAND_OWNERS[command],), OneCommand(sub, command)
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # that command group is not built yet
                continue
            raise
        module.register(sub)
    return parser


def _quiet_broken_pipe() -> int:
    """The reader of our output went away (``dockyard inspect x | head``): stop quietly, and keep
    Python from complaining when it flushes stdout at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command line's status. Called as the `dockyard` command (no ``argv``), the process
    ends here once the command is done and its output flushed (node/cli/exitnow.py); a caller
    that passes ``argv`` (the tests' launchers) gets the status back."""
    if argv is None:
        # The cyclic GC's young generation collected every 700 allocations: 14-16 collections,
        # ~3 ms of CPU, while a `run` imports and sets up (reference counting frees everything
        # else at once). At 20,000 a short command collects none; a long one (`logs -f`, an
        # attached `run`, `pull`) still collects, with at most that many young objects waiting.
        import gc
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    code = _run(argv)
    if argv is None:
        from node.cli.exitnow import exit_now
        exit_now(code)
    return code


def _run(argv: list[str] | None) -> int:
    words = sys.argv[1:] if argv is None else argv
    from node.cli.quickargs import listing_args
    args = listing_args(words)  # `ps` and `images` plainly spelt: no argparse (node/cli/quickargs.py)
    if args is None and "run" in words:
        from node.cli.quickrun import run_args
        args = run_args(words)  # so is `run` (node/cli/quickrun.py)
    if args is None:
        from node.cli.argparsing import unknown_flags_of_the_command
        parser = build_parser(requested_command(words))
        args = unknown_flags_of_the_command(parser, argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        return _quiet_broken_pipe()
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

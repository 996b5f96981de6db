"""The `dockyard` command line: parse arguments, call the library, print. No logic of its own.

Each group of commands lives in a module of node/cli/ exposing ``register(subparsers)``; a
handler is ``func(args) -> int``. Failures are raised as ``node.cli.common.CliError`` (or any
exception the handler maps to one) and printed as one readable line.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import sys

from node import __version__
from node.cli.common import CliError, DEFAULT_ROOT

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


def _terminal_columns() -> int:
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


class _HelpFormatter(argparse.HelpFormatter):
    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None) -> None:
        if width is None:
            width = _terminal_columns() - 2  # what HelpFormatter computes for width=None
        super().__init__(prog, indent_increment, max_help_position, width)


class _Parser(argparse.ArgumentParser):
    """argparse with docker's manners: a bad flag names itself and the command's help, on one
    line each, and exits 125 (docker: ``unknown flag: --bogus`` / ``See 'docker run --help'.``)."""

    def error(self, message: str):
        unknown = re.match(r"unrecognized arguments: (\S+)", message)
        if unknown and unknown.group(1).startswith("-"):
            message = f"unknown flag: {unknown.group(1)}"
        elif unknown:
            message = f"unexpected argument: {unknown.group(1)}"
        choice = re.match(r"argument COMMAND: invalid choice: '([^']*)'", message)
        if choice and self.prog == "dockyard":
            message = f"'{choice.group(1)}' is not a dockyard command"
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: {message}\nSee '{self.prog} --help'.\n")
        sys.exit(125)


class _Unused:
    """Stands in for the parser of a command this process will not run: every call is accepted
    and ignored, so a group's register() builds one command without knowing it."""

    def __getattr__(self, name):
        return self._ignore

    def _ignore(self, *args, **kwargs):
        return self


class _OneCommand:
    """The top-level subparsers, except that only ``command`` gets a real parser: an argparse
    parser costs ~0.3 ms to build, and a group registers up to twenty of them."""

    def __init__(self, sub, command: str) -> None:
        self._sub, self._command = sub, command

    def add_parser(self, name, **kwargs):
        if name == self._command or self._command in kwargs.get("aliases", ()):
            kwargs.setdefault("formatter_class", _HelpFormatter)
            return self._sub.add_parser(name, **kwargs)
        return _Unused()

    def __getattr__(self, name):
        return getattr(self._sub, name)


def _untranslated_argparse() -> None:
    """argparse passes every message through gettext, whose first lookup imports locale (~1.5 ms
    of every command) and which looks for each language's catalog again at every call. With no
    catalog directory where gettext looks (the interpreter's share/locale, unless some code
    bound a domain elsewhere) every lookup returns the message itself: answer that directly."""
    import gettext
    localedir = getattr(gettext, "_default_localedir", None)
    if localedir is None or getattr(gettext, "_localedirs", True) or os.path.isdir(localedir):
        return  # a catalog may exist: keep gettext
    argparse._ = lambda message: message
    argparse.ngettext = lambda singular, plural, n: singular if n == 1 else plural


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for every command, or (``command`` given) only for that command."""
    _untranslated_argparse()
    parser = _Parser(prog="dockyard", description="Pull images and run containers.",
                     formatter_class=_HelpFormatter)
    parser.add_argument(
        "--root",
        default=os.environ.get("DOCKYARD_ROOT", DEFAULT_ROOT),
        help="directory for all state (default: $DOCKYARD_ROOT or %(default)s)",
    )
    parser.add_argument("--debug", action="store_true", help="print tracebacks on failure")
    parser.add_argument("-v", "--version", action="version", version=f"Dockyard version {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    modules = COMMAND_MODULES
    if command in COMMAND_OWNERS:
        modules, sub = (COMMAND_OWNERS[command],), _OneCommand(sub, command)
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # that command group is not built yet
                continue
            raise
        module.register(sub)
    return parser


def _unknown_flags_of_the_command(parser: argparse.ArgumentParser, argv: list[str] | None):
    """Parse; leftovers are blamed on the subcommand they were given to, with its usage."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        owner = parser
        action = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        words = iter(sys.argv[1:] if argv is None else argv)
        for word in words:
            if word == "--root":
                next(words, None)
            elif action is not None and word in action.choices:
                owner = action.choices[word]
                break
            elif not word.startswith("-"):
                break
        owner.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def _quiet_broken_pipe() -> int:
    """The reader of our output went away (``dockyard inspect x | head``): stop quietly, and keep
    Python from complaining when it flushes stdout at exit."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(requested_command(sys.argv[1:] if argv is None else argv))
    args = _unknown_flags_of_the_command(parser, argv)
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

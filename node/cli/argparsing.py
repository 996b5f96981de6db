"""The argparse side of the `dockyard` command line (node/__main__.py): docker's manners for
errors and help, and the stand-ins that let one command's group build only that command's parser.
Its own module so that `ps` and `images`, parsed by node/cli/quickargs.py, never import argparse."""
from __future__ import annotations

import argparse
import os
import re
import sys

from node.cli.common import terminal_columns


class HelpFormatter(argparse.HelpFormatter):
    def __init__(self, prog, indent_increment=2, max_help_position=24, width=None) -> None:
        if width is None:
            width = terminal_columns() - 2  # what HelpFormatter computes for width=None
        super().__init__(prog, indent_increment, max_help_position, width)


class Parser(argparse.ArgumentParser):
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


class OneCommand:
    """The top-level subparsers, except that only ``command`` gets a real parser: an argparse
    parser costs ~0.3 ms to build, and a group registers up to twenty of them."""

    def __init__(self, sub, command: str) -> None:
        self._sub, self._command = sub, command

    def add_parser(self, name, **kwargs):
        if name == self._command or self._command in kwargs.get("aliases", ()):
            kwargs.setdefault("formatter_class", HelpFormatter)
            return self._sub.add_parser(name, **kwargs)
        return _Unused()

    def __getattr__(self, name):
        return getattr(self._sub, name)


def untranslated_argparse() -> None:
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


def unknown_flags_of_the_command(parser: argparse.ArgumentParser, argv: list[str] | None):
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

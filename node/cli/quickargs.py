"""`ps` and `images` without argparse: the arguments of the two listing commands, read by hand
when they are plainly valid, else None (main() then builds the argparse parser as for any
command, which parses, explains or refuses exactly as before).

argparse, with the `re`, `enum` and gettext it imports and the parser it builds, is ~6-8 ms of
a ~35 ms `dockyard ps` (bench/results/PROFILE.md section 21). Only spellings argparse reads the
same way are accepted here: the options written in full (no abbreviations), `--opt=value`,
a value as the next word unless it starts with "-", short flags that take no value bundled
(`-aq`); nothing else (`--help`, `--`, a positional word, `-fVALUE`, an unknown flag) is
guessed at. tests/node/test_quickargs.py checks each accepted form against build_parser().
"""
from __future__ import annotations

import os

from node.cli.common import DEFAULT_ROOT


class Namespace:
    """What argparse.Namespace gives a handler: attributes (and vars())."""

    def __init__(self, **kwargs) -> None:
        self.__dict__.update(kwargs)

    def __repr__(self) -> str:
        return f"Namespace({', '.join(f'{k}={v!r}' for k, v in self.__dict__.items())})"


# command words -> (its options: {option string: (dest, kind)}, the namespace's command fields)
_PS = {"-a": ("all", "flag"), "--all": ("all", "flag"), "-q": ("quiet", "flag"),
       "--quiet": ("quiet", "flag"), "--no-trunc": ("no_trunc", "flag"),
       "-f": ("filter", "append"), "--filter": ("filter", "append"), "--format": ("format", "value"),
       "-n": ("last", "int"), "--last": ("last", "int"), "-l": ("latest", "flag"),
       "--latest": ("latest", "flag")}
_PS_DEFAULTS = {"all": False, "quiet": False, "no_trunc": False, "filter": None, "format": "",
                "last": -1, "latest": False}
_IMAGES = {"-a": ("all", "flag"), "--all": ("all", "flag"), "--digests": ("digests", "flag"),
           "--no-trunc": ("no_trunc", "flag"), "-q": ("quiet", "flag"), "--quiet": ("quiet", "flag"),
           "-f": ("filter", "append"), "--filter": ("filter", "append"), "--format": ("format", "value")}
_IMAGES_DEFAULTS = {"repository": None, "all": False, "digests": False, "no_trunc": False,
                    "quiet": False, "filter": None, "format": ""}


def global_options(argv: list[str]) -> tuple[str, bool, int] | None:
    """The top-level `--root`/`--debug` before the command, as argparse reads them plainly
    spelt: (root, debug, index of the command word), or None when it would read them otherwise."""
    root = os.environ.get("DOCKYARD_ROOT", DEFAULT_ROOT)
    debug = False
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--root":
            if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                return None
            root, i = argv[i + 1], i + 2
        elif word.startswith("--root="):
            root, i = word[len("--root="):], i + 1
        elif word == "--debug":
            debug, i = True, i + 1
        else:
            break
    return root, debug, i


def listing_args(argv: list[str]) -> Namespace | None:
    """The namespace build_parser().parse_args(argv) would give for `ps`, `container ls`,
    `images` or `image ls`, or None for anything else (or anything not plainly valid)."""
    leading = global_options(argv)
    if leading is None:
        return None
    root, debug, i = leading
    words = argv[i:]
    fields: dict = {"root": root, "debug": debug}
    if words[:1] == ["ps"]:
        fields["command"], rest, table, defaults = "ps", words[1:], _PS, _PS_DEFAULTS
    elif words[:2] == ["container", "ls"]:
        fields.update(command="container", container_command="ls")
        rest, table, defaults = words[2:], _PS, _PS_DEFAULTS
    elif words[:1] == ["images"]:
        fields["command"], rest, table, defaults = "images", words[1:], _IMAGES, _IMAGES_DEFAULTS
    elif words[:2] == ["image", "ls"]:
        fields.update(command="image", image_command="ls")
        rest, table, defaults = words[2:], _IMAGES, _IMAGES_DEFAULTS
    else:
        return None
    values = _options(rest, table, dict(defaults))
    if values is None:
        return None
    if values["filter"] is None:
        values["filter"] = []
    fields.update(values)
    fields["func"] = _handler(table is _PS)
    return Namespace(**fields)


def _options(words: list[str], table: dict, values: dict) -> dict | None:
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if not word.startswith("-") or word == "-" or word == "--":
            return None  # a positional word (images REPOSITORY), or argparse's own rules
        if word.startswith("--") and "=" in word:
            option, _, value = word.partition("=")
            spec = table.get(option)
            if spec is None or spec[1] == "flag":
                return None
        elif word in table:
            spec = table[word]
            value = None
            if spec[1] != "flag":
                if i >= len(words) or words[i].startswith("-"):
                    return None  # argparse: "expected one argument" (or a negative number)
                value = words[i]
                i += 1
        elif not word.startswith("--") and all(table.get("-" + c, ("", ""))[1] == "flag" for c in word[1:]):
            for c in word[1:]:  # bundled short flags: -aq
                values[table["-" + c][0]] = True
            continue
        else:
            return None
        dest, kind = spec
        if kind == "flag":
            values[dest] = True
        elif kind == "append":
            values[dest] = [*(values[dest] or []), value]
        elif kind == "int":
            try:
                values[dest] = int(value)
            except ValueError:
                return None  # argparse explains "invalid int value"
        else:
            values[dest] = value
    return values


def _handler(ps: bool):
    if ps:
        from node.cli.containers import ps_handler
        return ps_handler
    from node.cli.images import images_handler
    return images_handler

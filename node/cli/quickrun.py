"""`run` without argparse: its arguments read by hand when they are plainly valid, else None
(main() then builds the argparse parser, which parses, explains or refuses exactly as before).

Building `run`'s parser (~70 options, a HelpFormatter made per option) and importing argparse
with gettext is ~4 ms of a ~75 ms `dockyard run --rm IMG true` (bench/results/PROFILE.md section
23). The options are not listed twice: the table is what node/cli/runflags.py and
node/cli/attachflags.py register, recorded by a stand-in parser. Only spellings that argparse
reads the same way are taken: options written in full (no abbreviations), `--opt=value`, a value
as the next word unless it starts with "-", bundled short flags that take no value (`-it`), then
the image and the command word for word (argparse's REMAINDER). Anything else (`--help`, a `--`
anywhere, `-eK=V`, an option with an optional value such as `--sig-proxy`, a value that
fails its type or choices, an unknown flag) is left to argparse. tests/node/test_quickrun.py
checks each accepted form against build_parser().
"""
from __future__ import annotations

from node.cli.quickargs import Namespace, global_options

FLAG, APPEND, VALUE, OTHER = "flag", "append", "value", "other"


class _Recorder:
    """Stands in for `run`'s argparse parser: keeps each option's dest, kind, default, type and
    choices as argparse would derive them from the same add_argument call."""

    def __init__(self) -> None:
        self.options: dict[str, tuple] = {}  # option string -> (dest, kind, type, choices)
        self.defaults: dict = {}

    def add_argument(self, *flags: str, **kw) -> None:
        if not flags[0].startswith("-"):
            self.defaults[kw.get("dest", flags[0])] = [] if kw.get("nargs") == "..." else None  # "...": REMAINDER
            return  # image and command: read by position below
        long = next((f for f in flags if f.startswith("--")), flags[0])
        dest = kw.get("dest") or long.lstrip("-").replace("-", "_")
        action = kw.get("action")
        if action == "store_true" and len(kw.keys() - {"action", "dest", "help"}) == 0:
            kind, default = FLAG, False
        elif action == "append" and kw.keys() <= {"action", "default", "dest", "metavar", "help"}:
            kind, default = APPEND, kw.get("default")
        elif action is None and kw.keys() <= {"default", "dest", "metavar", "help", "type", "choices"}:
            kind, default = VALUE, kw.get("default")
            if isinstance(default, str) and kw.get("type") is not None:
                kind = OTHER  # argparse would convert a string default: not guessed at here
        else:
            kind, default = OTHER, kw.get("default")
        self.defaults[dest] = default
        for flag in flags:
            self.options[flag] = (dest, kind, kw.get("type"), kw.get("choices"))


class _RunOnly:
    """The subparsers object attachflags.register() sees: `run` is the recorder, the rest unused."""

    def __init__(self, recorder: _Recorder) -> None:
        self.choices = {"run": recorder}


class _Ignored:
    """The parser of a command other than `run` (attachflags registers `attach` too): unused."""

    def add_argument(self, *args, **kwargs) -> None:
        pass


def _ignored(*args, **kwargs) -> _Ignored:
    return _Ignored()


_TABLE: _Recorder | None = None


def _table() -> _Recorder:
    global _TABLE
    if _TABLE is None:
        from node.cli import attachflags
        from node.cli.runflags import add_run_options
        recorder = _Recorder()
        add_run_options(recorder)
        attachflags.register(_RunOnly(recorder), _ignored)
        _TABLE = recorder
    return _TABLE


def run_args(argv: list[str]) -> Namespace | None:
    """The namespace build_parser().parse_args(argv) would give for `run`, but ``func``, which is
    the same handler wrapped anew; or None for anything else (or anything not plainly valid)."""
    leading = global_options(argv)
    if leading is None:
        return None
    root, debug, i = leading
    if argv[i:i + 1] != ["run"]:
        return None
    table = _table()
    values = {dest: (list(d) if isinstance(d, list) else d) for dest, d in table.defaults.items()}
    words = argv[i + 1:]
    j = 0
    while j < len(words):
        word = words[j]
        if not word.startswith("-"):
            break  # the image
        j += 1
        if word == "-" or word == "--":
            return None  # argparse's own rules for these
        if word.startswith("--") and "=" in word:
            option, _, value = word.partition("=")
            spec = table.options.get(option)
            if spec is None or spec[1] not in (APPEND, VALUE):
                return None
        elif word in table.options:
            spec = table.options[word]
            value = None
            if spec[1] in (APPEND, VALUE):
                if j >= len(words) or words[j].startswith("-"):
                    return None  # argparse: "expected one argument" (or a negative number)
                value = words[j]
                j += 1
            elif spec[1] != FLAG:
                return None
        elif not word.startswith("--") and all(table.options.get("-" + c, ("", ""))[1] == FLAG
                                               for c in word[1:]):
            for c in word[1:]:  # bundled short flags: -it, -dit
                values[table.options["-" + c][0]] = True
            continue
        else:
            return None
        dest, kind, convert, choices = spec
        if kind == FLAG:
            values[dest] = True
            continue
        if convert is not None:
            try:
                value = convert(value)
            except ValueError:
                return None  # argparse explains "invalid int value"
        if choices is not None and value not in choices:
            return None
        if kind == APPEND:
            values[dest] = [*(values[dest] or []), value]
        else:
            values[dest] = value
    if j >= len(words) or "--" in words[j:]:
        return None  # no image (argparse says what is required), or a "--" argparse may drop
    values["image"], values["command"] = words[j], words[j + 1:]
    from node.cli.common import engine_errors
    from node.cli.containers import cmd_run
    # no command="run": the subcommand's positional of the same dest overwrites it in argparse too
    return Namespace(root=root, debug=debug, **values, func=engine_errors(cmd_run))

"""The part of Go's text/template that `docker ... --format` users write, for `ps`, `images`, `inspect`.

Supported: ``{{.Field}}``, ``{{.Field.Sub}}``, ``{{.}}``, method calls with arguments
(``{{.Label "com.example.key"}}``), functions ``json index upper lower title join split truncate
pad println printf``, pipelines (``{{.Names | upper}}``), ``{{- ... -}}`` trimming, and the ``\\t`` /
``\\n`` escapes docker expands. ``table`` before the template prints a header row (each field's
header, as docker names it) and aligns columns as docker's tabwriter does (minimum width 10,
padding 3). Anything else — ``if``, ``range``, variables — is refused with one clear line rather
than printed wrong.
"""
from __future__ import annotations

from _collections_abc import Mapping  # collections.abc's own; `collections` costs ~1 ms to import

# Annotations only (postponed): importing typing costs every `ps`/`images` ~2 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable

# `re` (~4 ms to import, with enum) and `json` (which imports re) are imported where a template
# needs them: docker's default tables (a field per action) are split and parsed without them.
_ACTION_PATTERN = r"\{\{(-?)(.*?)(-?)\}\}"
_TOKEN_PATTERN = (r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)|(?P<num>-?\d+)|(?P<pipe>\|)'
                  r'|(?P<field>\.[A-Za-z_][\w.]*|\.)|(?P<name>[A-Za-z_]\w*))')
_FIELD_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_FIELD_CHARS = _FIELD_START | frozenset("0123456789.")


class TemplateError(ValueError):
    """The --format template cannot be used; the message says why."""


def _go_json(value: Any) -> str:
    if isinstance(value, Mapping) and "_json" in value:  # a row: docker's keys, not our helpers
        value = value["_json"]
    import json
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _truncate(value: Any, n: Any) -> str:
    return str(value)[:int(n)]


def _pad(value: Any, left: Any, right: Any) -> str:
    return " " * int(left) + str(value) + " " * int(right)


def _join(value: Any, sep: Any) -> str:
    return str(sep).join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)


def _printf(fmt: Any, *args: Any) -> str:
    import json
    import re
    return re.sub(r"%[vsdq]", lambda m, it=iter(args): (json.dumps(str(next(it, ""))) if m.group() == "%q"
                                                         else str(next(it, ""))), str(fmt))


def _index(value: Any, *keys: Any) -> Any:
    """Go's index: a map's value ("" when the key is absent, as a map of strings gives), a list's item."""
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key, "")
        elif isinstance(value, (list, tuple)) and isinstance(key, int):
            if not -1 < key < len(value):
                raise TemplateError(f"template: index out of range: {key}")
            value = value[key]
        else:
            raise TemplateError(f"template: can't index item of type {type(value).__name__}")
    return value


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "index": _index,
    "json": _go_json, "upper": lambda v: str(v).upper(), "lower": lambda v: str(v).lower(),
    "title": lambda v: str(v).title(), "join": _join, "split": lambda v, sep: str(v).split(str(sep)),
    "truncate": _truncate, "pad": _pad, "println": lambda *v: " ".join(str(x) for x in v) + "\n",
    "printf": _printf,
}


def _field(row: Any, path: str) -> Any:
    value = row
    for part in [p for p in path.split(".") if p]:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            raise TemplateError(f"template: can't evaluate field {part}")
    return value


def _tokens(action: str) -> list[tuple[str, str]]:
    action = action.strip()
    if _plain_field(action):
        return [("field", action)]  # what _TOKEN_PATTERN reads there: one field token
    import re
    token = re.compile(_TOKEN_PATTERN)
    out, pos = [], 0
    while pos < len(action):
        m = token.match(action, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"template: unexpected {action[pos:]!r} in {{{{{action}}}}}")
        pos = m.end()
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
    return out


def _plain_field(action: str) -> bool:
    """``.`` or ``.Name.Sub`` in ASCII letters, digits, "_" and "." (a stripped action): the field
    alternative of _TOKEN_PATTERN matches it whole (the string, number and pipe ones cannot start
    there), so the tokens are that one field."""
    if action == ".":
        return True
    return (len(action) > 1 and action[0] == "." and action[1] in _FIELD_START
            and all(c in _FIELD_CHARS for c in action))


def _literal(kind: str, text: str) -> Any:
    if kind == "str":
        import json
        return text[1:-1] if text.startswith("`") else json.loads(text)
    return int(text)


_PARSED: dict[str, list] = {}  # action text -> its commands: `ps` renders one template per row


def _parse(action: str) -> list:
    commands = _PARSED.get(action)
    if commands is None:
        commands = _PARSED[action] = _parse_uncached(action)
    return commands


def _parse_uncached(action: str) -> list:
    tokens = _tokens(action)
    if not tokens:
        raise TemplateError("template: empty action {{}}")
    if tokens[0] == ("name", "end") or tokens[0][0] == "name" and tokens[0][1] in ("if", "range", "with",
                                                                                  "define", "block", "else"):
        raise TemplateError(f"template: {tokens[0][1]!r} is not supported by dockyard's --format")
    commands, current = [], []
    for tok in tokens:
        if tok[0] == "pipe":
            commands.append(current)
            current = []
        else:
            current.append(tok)
    commands.append(current)
    for command in commands:
        if not command:
            raise TemplateError(f"template: missing command in {{{{{action}}}}}")
    return commands


def _evaluate(action: str, row: Any) -> Any:
    value: Any = None
    for index, command in enumerate(_parse(action)):
        (kind, text), rest = command[0], command[1:]
        args = [_field(row, t) if k == "field" else _literal(k, t) for k, t in rest if k != "name"]
        if index:
            args.append(value)
        if kind == "name":
            if text not in FUNCTIONS:
                raise TemplateError(f'template: function "{text}" not defined')
            value = FUNCTIONS[text](*args)
        elif kind == "field":
            value = _field(row, text)
            if callable(value):
                value = value(*args)
            elif args:
                raise TemplateError(f"template: {text} is not a method but has arguments")
        else:
            value = _literal(kind, text)
    return value


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<no value>"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_show(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(_show(v) for v in value) + "]"
    return str(value)


_SPLIT: dict[str, tuple[list[tuple[str, str]], str]] = {}  # template -> (text, action)..., tail


def _split(template: str) -> tuple[list[tuple[str, str]], str]:
    """The template's literal text and actions, trimmed as ``{{-``/``-}}`` say; once per template."""
    if template not in _SPLIT:
        text_ = template.replace("\\t", "\t").replace("\\n", "\n")
        pieces, pos = [], 0
        for start, end, left, action, right in _actions(text_):
            text = text_[pos:start]
            if left:
                text = text.rstrip()
            pieces.append((text, action))
            pos = end
            if right:
                while pos < len(text_) and text_[pos].isspace():
                    pos += 1
        _SPLIT[template] = (pieces, text_[pos:])
    return _SPLIT[template]


def _actions(text: str):
    """What ``re.finditer(_ACTION_PATTERN, text, re.S)`` finds, as (start, end, "-" or "",
    action, "-" or ""), by hand: each "{{", then an optional "-", then the shortest text up to
    the first "}}" (with a "-" just before it, if one is there and after the opening)."""
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            return
        left = "-" if text.startswith("-", start + 2) else ""
        body = start + 2 + len(left)
        close = text.find("}}", body)
        if close < 0:
            return  # no "}}" after this "{{", so none after any later one either
        right = "-" if close > body and text[close - 1] == "-" else ""
        yield start, close + 2, left, text[body:close - len(right)], right
        pos = close + 2


def render(template: str, row: Any) -> str:
    """One row through the template (no trailing newline added)."""
    pieces, tail = _split(template)
    out = []
    for text, action in pieces:
        out.append(text)
        out.append(_show(_evaluate(action, row)))
    out.append(tail)
    return "".join(out)


def align(lines: Iterable[str], min_width: int = 10, padding: int = 3) -> list[str]:
    """Go's tabwriter as docker sets it up: tab-terminated cells padded to the column width."""
    rows = [line.split("\t") for line in lines]
    widths: dict[int, int] = {}
    for cells in rows:
        for i, cell in enumerate(cells[:-1]):
            widths[i] = max(widths.get(i, 0), len(cell) + padding, min_width)
    return ["".join(c.ljust(widths[i]) for i, c in enumerate(cells[:-1])) + cells[-1] for cells in rows]


def format_rows(spec: str, rows: list[Mapping], headers: Mapping[str, str], default_table: str) -> list[str]:
    """``spec`` as docker takes --format: "table", "json", "table TEMPLATE" or a raw TEMPLATE."""
    spec = spec or "table"
    if spec == "json":
        return [_go_json(r) for r in rows]
    if spec == "table":
        spec = "table " + default_table
    if spec.startswith("table"):
        body = spec[len("table"):].strip()
        head = render(body, _Headers(headers))
        return align([head, *(render(body, r) for r in rows)])
    return [render(spec, r) for r in rows]


class _Headers(dict):
    """Evaluates every field to its column header (docker's header context)."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        super().__init__()
        self.headers = headers

    def __contains__(self, key) -> bool:
        return True

    def __getitem__(self, key):
        header = self.headers.get(key, key.upper())
        return (lambda *args: header) if key in ("Label",) else header

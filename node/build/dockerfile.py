"""The Dockerfile's syntax, after BuildKit's parser (frontend/dockerfile/parser): text -> a list of
``Instruction`` with their line numbers. Meaning (flags, forms, variables) is instructions.py's job.

Grammar, as BuildKit reads it:
- parser directives (``# syntax=``, ``# escape=``, ``# check=``) only in the leading comment
  block, before any blank line, other comment or instruction; ``escape`` is ``\\`` or ```;
- comments are lines whose first non-blank character is ``#``; they and blank lines are
  dropped, also in the middle of a continued instruction;
- a line ending with the escape character (trailing blanks aside) continues on the next line;
- the first word is the instruction (any case); the leading ``--name=value`` words are its
  flags; the rest stays text, or a JSON array of strings (the exec form) when it parses as one;
- heredocs: on RUN, COPY and ADD, each ``<<WORD``, ``<<-WORD`` (leading tabs stripped),
  ``<<"WORD"`` / ``<<'WORD'`` (quoted: no expansion) takes the following lines up to a line
  that is ``WORD``.
"""
from __future__ import annotations

import json
import re

from oci.record import Factory, record

INSTRUCTIONS = frozenset({
    "from", "run", "cmd", "label", "maintainer", "expose", "env", "add", "copy", "entrypoint",
    "volume", "user", "workdir", "arg", "onbuild", "stopsignal", "healthcheck", "shell",
})
HEREDOC_INSTRUCTIONS = frozenset({"run", "copy", "add"})
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_HEREDOC = re.compile(r"<<(-?)(?:\"([^\"\s]+)\"|'([^'\s]+)'|([A-Za-z0-9_]+))")
_FLAG = re.compile(r"^--[a-zA-Z][a-zA-Z0-9-]*(=.*)?$")


class DockerfileError(ValueError):
    """A syntax error, worded ``NAME:LINE: reason`` (the CLI prints it as is)."""

    def __init__(self, line: int, message: str, name: str = "Dockerfile") -> None:
        super().__init__(f"{name}:{line}: {message}")
        self.line = line
        self.reason = message


@record
class Heredoc:
    name: str
    content: str
    expand: bool  # False when the delimiter was quoted
    chomp: bool = False


@record
class Instruction:
    cmd: str                   # lower case: "run", "copy"...
    line: int                  # first line of the instruction (1-based)
    end_line: int
    original: str              # the instruction as written, continuations joined
    flags: list[str] = Factory(list)   # ["--from=build", ...] as written
    args: str = ""             # the text after the flags (continuations joined with nothing)
    json_args: list[str] | None = None                # the exec form, when args parse as one
    heredocs: list[Heredoc] = Factory(list)

    def error(self, message: str, name: str = "Dockerfile") -> DockerfileError:
        return DockerfileError(self.line, message, name)


@record
class Dockerfile:
    instructions: list[Instruction]
    escape: str = "\\"
    directives: dict[str, str] = Factory(dict)
    notes: list[str] = Factory(list)  # things accepted and ignored (e.g. # syntax=)


def parse(text: str, name: str = "Dockerfile") -> Dockerfile:
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    directives, first = _directives(lines, name)
    escape = directives.get("escape", "\\")
    notes = []
    if "syntax" in directives:
        notes.append(f"# syntax={directives['syntax']} ignored: Dockyard builds with its own frontend")
    out: list[Instruction] = []
    i = first
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = i
        parts: list[str] = []
        while i < len(lines):
            line = lines[i]
            i += 1
            if parts and (not line.strip() or _is_comment(line)):
                continue  # blank lines and comments inside a continued instruction are dropped
            content = line.rstrip()
            if content.endswith(escape):
                parts.append(content[: -len(escape)])
                continue
            parts.append(content)
            break
        joined = "".join(parts).strip()
        inst, i = _instruction(joined, start + 1, i, lines, escape, name)
        out.append(inst)
    return Dockerfile(out, escape, directives, notes)


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _directives(lines: list[str], name: str) -> tuple[dict[str, str], int]:
    found: dict[str, str] = {}
    i = 0
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i].strip()) if lines[i].strip().startswith("#") else None
        if not m:
            break
        key, value = m.group(1).lower(), m.group(2)
        if key in found:
            raise DockerfileError(i + 1, f"only one {key} parser directive can be used", name)
        if key == "escape" and value not in ("\\", "`"):
            raise DockerfileError(i + 1, f"invalid escape token {value!r} does not match ` or \\", name)
        found[key] = value
        i += 1
    return found, 0 if not found else i


def _instruction(text: str, line: int, next_index: int, lines: list[str], escape: str,
                 name: str) -> tuple[Instruction, int]:
    word, _, rest = text.partition(" ")
    if "\t" in word:
        word, _, more = word.partition("\t")
        rest = more + " " + rest
    cmd = word.lower()
    if cmd not in INSTRUCTIONS:
        raise DockerfileError(line, f"unknown instruction: {word}", name)
    rest = rest.strip()
    flags: list[str] = []
    while rest.startswith("--"):
        token, _, after = rest.partition(" ")
        if not _FLAG.match(token):
            break
        flags.append(token)
        rest = after.lstrip()
    inst = Instruction(cmd=cmd, line=line, end_line=next_index, original=text, flags=flags, args=rest)
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            inst.json_args = value
    if cmd in HEREDOC_INSTRUCTIONS and inst.json_args is None and "<<" in rest:
        next_index = _read_heredocs(inst, next_index, lines, name)
        inst.end_line = next_index
    if cmd == "onbuild":
        inner = rest.split(None, 1)[0].lower() if rest else ""
        if inner in ("onbuild", "from", "maintainer"):
            raise DockerfileError(line, f"{inner.upper()} isn't allowed as an ONBUILD trigger", name)
        if inner not in INSTRUCTIONS:
            raise DockerfileError(line, f"unknown instruction: {rest.split(None, 1)[0] if rest else '(none)'}", name)
    return inst, next_index


def _read_heredocs(inst: Instruction, i: int, lines: list[str], name: str) -> int:
    for m in _HEREDOC.finditer(inst.args):
        chomp = m.group(1) == "-"
        word = m.group(2) or m.group(3) or m.group(4)
        quoted = bool(m.group(2) or m.group(3))
        body: list[str] = []
        while True:
            if i >= len(lines):
                raise DockerfileError(inst.line, f"unterminated heredoc {word!r}", name)
            line = lines[i]
            i += 1
            check = line.lstrip("\t") if chomp else line
            if check == word:
                break
            body.append(check)
        content = "\n".join(body) + ("\n" if body else "")
        inst.heredocs.append(Heredoc(word, content, expand=not quoted, chomp=chomp))
    return i


def parse_flags(inst: Instruction, allowed: dict[str, bool], name: str = "Dockerfile") -> dict[str, list[str]]:
    """The instruction's flags by name; ``allowed`` maps each known flag to whether it may repeat.
    A bare ``--flag`` (booleans such as ``--link``) gets the value "true"."""
    out: dict[str, list[str]] = {}
    for token in inst.flags:
        key, sep, value = token[2:].partition("=")
        if key not in allowed:
            raise inst.error(f"unknown flag: --{key}", name)
        if key in out and not allowed[key]:
            raise inst.error(f"duplicate flag specified: --{key}", name)
        out.setdefault(key, []).append(value if sep else "true")
    return out

""".dockerignore, with Docker's rules (moby/patternmatcher and the CLI's reader):

- one pattern a line; ``#`` starts a comment line; blank lines are skipped; surrounding blanks
  trimmed; a leading ``!`` makes an exception; the path is cleaned (``./a/../b`` -> ``b``) and a
  leading ``/`` dropped;
- ``*`` is any run of characters but ``/``, ``?`` one such character, ``[...]`` a class, ``\\``
  escapes, and ``**`` any number of directories (zero included);
- a pattern matches a path or any of its parent directories; the last matching pattern wins
  (an exception re-includes what an earlier pattern excluded);
- ``<Dockerfile>.dockerignore`` beside the Dockerfile is used instead of the context's
  ``.dockerignore`` when it exists.
"""
from __future__ import annotations

import posixpath
import re
from pathlib import Path

from oci.record import record


@record
class Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern
    dirs_prefix: tuple[str, ...]  # literal leading components (to prune the walk)


def _clean(path: str) -> str:
    cleaned = posixpath.normpath(path)
    while cleaned.startswith("/"):
        cleaned = cleaned[1:]
    return "" if cleaned in (".", "") else cleaned


def _compile(pattern: str) -> re.Pattern:
    out = ["^"]
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 1
                # "**/" matches zero or more directories; a trailing "**" anything below
                if i + 1 < n and pattern[i + 1] == "/":
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise ValueError(f"syntax error in pattern {pattern!r}: unterminated [")
            body = pattern[i + 1:end]
            if body.startswith("^") or body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return re.compile("".join(out), re.S)


def _literal_prefix(pattern: str) -> tuple[str, ...]:
    parts = []
    for comp in pattern.split("/"):
        if any(c in comp for c in "*?[\\"):
            break
        parts.append(comp)
    return tuple(parts)


class IgnoreMatcher:
    def __init__(self, lines: list[str]) -> None:
        self.patterns: list[Pattern] = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            if exclusion:
                line = line[1:].strip()
            text = _clean(line)
            if not text:
                continue
            self.patterns.append(Pattern(text, exclusion, _compile(text), _literal_prefix(text)))
        self.has_exceptions = any(p.exclusion for p in self.patterns)

    @classmethod
    def empty(cls) -> "IgnoreMatcher":
        return cls([])

    def _matches(self, p: Pattern, path: str, parents: list[str]) -> bool:
        if p.regex.match(path):
            return True
        return any(p.regex.match(parent) for parent in parents)

    def ignored(self, path: str) -> bool:
        """Whether the context-relative ``path`` ("a/b.txt") is left out."""
        path = _clean(path)
        if not path or not self.patterns:
            return False
        comps = path.split("/")
        parents = ["/".join(comps[:i]) for i in range(1, len(comps))]
        matched = False
        for p in self.patterns:
            if p.exclusion == matched and self._matches(p, path, parents):
                matched = not p.exclusion
        return matched

    def may_include_below(self, directory: str) -> bool:
        """Whether an exception could re-include something under an ignored ``directory``; if
        not, the walk skips it whole."""
        if not self.has_exceptions:
            return False
        directory = _clean(directory)
        comps = tuple(directory.split("/")) if directory else ()
        for p in self.patterns:
            if not p.exclusion:
                continue
            prefix = p.dirs_prefix
            n = min(len(prefix), len(comps))
            if prefix[:n] == comps[:n]:
                return True
        return False


def read_ignore_file(context: Path, dockerfile: Path | None) -> IgnoreMatcher:
    """The Dockerfile-specific ignore file if there is one, else the context's .dockerignore."""
    candidates = []
    if dockerfile is not None:
        candidates.append(dockerfile.parent / (dockerfile.name + ".dockerignore"))
    candidates.append(context / ".dockerignore")
    for path in candidates:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return IgnoreMatcher(f.read().splitlines())
        except FileNotFoundError:
            continue
        except IsADirectoryError:
            continue
    return IgnoreMatcher.empty()

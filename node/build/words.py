"""Word processing as BuildKit's shell lexer does it (frontend/dockerfile/shell/lex.go), for the
instructions that expand variables at build time (FROM, COPY, ADD, ENV, ARG, LABEL, EXPOSE, USER,
WORKDIR, VOLUME, STOPSIGNAL and the flags of RUN): quotes are removed, the escape character
quotes the next one, and ``$VAR``, ``${VAR}``, ``${VAR:-word}``, ``${VAR-word}``, ``${VAR:+word}``,
``${VAR+word}``, ``${VAR:?msg}``, ``${VAR?msg}`` are replaced. Single quotes keep everything
literal; inside double quotes only ``$`` and the escapes of ``"``, ``$`` and the escape char work.

``split_words`` cuts a line into words on unquoted blanks keeping the quotes (what the parser
does for ENV/LABEL/ARG before each word is processed).
"""
from __future__ import annotations

from collections.abc import Mapping


class WordError(ValueError):
    """A malformed word (unterminated quote or ${...}) or a ${VAR:?msg} on an unset variable."""


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """One word with quotes removed and variables substituted (no splitting)."""
    return _Lexer(word, env, escape).process(split=False)[0]


def expand_fields(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """``text`` split on unquoted blanks into processed words (EXPOSE, VOLUME's shell form)."""
    return _Lexer(text, env, escape).process(split=True)


def split_words(text: str, escape: str = "\\") -> list[str]:
    """Unquoted-blank-separated words, quotes and escapes left in place."""
    words: list[str] = []
    cur: list[str] = []
    quote = ""
    in_word = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            cur.append(ch)
            if ch == escape and quote == '"' and i + 1 < len(text):
                cur.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in " \t\r\n":
            if in_word:
                words.append("".join(cur))
                cur, in_word = [], False
        else:
            in_word = True
            cur.append(ch)
            if ch in "'\"":
                quote = ch
            elif ch == escape and i + 1 < len(text):
                cur.append(text[i + 1])
                i += 1
        i += 1
    if in_word:
        words.append("".join(cur))
    return words


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.text, self.env, self.escape = text, env, escape
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1
        return ch

    def process(self, split: bool) -> list[str]:
        words: list[str] = []
        cur: list[str] = []
        started = False
        while self.pos < len(self.text):
            ch = self.peek()
            if split and ch in " \t\r\n":
                self.pos += 1
                if started:
                    words.append("".join(cur))
                    cur, started = [], False
                continue
            started = True
            if ch == "'":
                self.pos += 1
                cur.append(self._single())
            elif ch == '"':
                self.pos += 1
                cur.append(self._double())
            elif ch == self.escape:
                self.pos += 1
                nxt = self.next()
                cur.append(nxt)  # a trailing escape char vanishes, as in BuildKit
            elif ch == "$":
                self.pos += 1
                value = self._dollar()
                if split and value and not self._quoted_context:
                    # an unquoted variable's value is split into fields, as a shell would
                    parts = value.split()
                    if value[0] in " \t" and started and cur:
                        words.append("".join(cur))
                        cur = []
                    for p in parts[:-1]:
                        cur.append(p)
                        words.append("".join(cur))
                        cur = []
                    if parts:
                        cur.append(parts[-1])
                    if value[-1] in " \t" and parts:
                        words.append("".join(cur))
                        cur, started = [], False
                else:
                    cur.append(value)
            else:
                self.pos += 1
                cur.append(ch)
        if started or not split:
            words.append("".join(cur))
        return words

    _quoted_context = False

    def _single(self) -> str:
        end = self.text.find("'", self.pos)
        if end < 0:
            raise WordError(f"unexpected end of statement while looking for matching single-quote in {self.text!r}")
        out = self.text[self.pos:end]
        self.pos = end + 1
        return out

    def _double(self) -> str:
        out: list[str] = []
        while True:
            ch = self.next()
            if ch == "":
                raise WordError(f"unexpected end of statement while looking for matching double-quote in {self.text!r}")
            if ch == '"':
                return "".join(out)
            if ch == "$":
                self._quoted_context = True
                try:
                    out.append(self._dollar())
                finally:
                    self._quoted_context = False
            elif ch == self.escape:
                nxt = self.peek()
                if nxt in ('"', "$", self.escape):
                    self.pos += 1
                    out.append(nxt)
                else:
                    out.append(ch)
            else:
                out.append(ch)

    def _name(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and (self.text[self.pos].isalnum() or self.text[self.pos] == "_"):
            self.pos += 1
        return self.text[start:self.pos]

    def _dollar(self) -> str:
        ch = self.peek()
        if ch != "{":
            name = self._name()
            if not name:
                return "$"
            return self.env.get(name, "")
        self.pos += 1
        name = self._name()
        if not name:
            raise WordError(f"bad substitution in {self.text!r}: ${{ needs a variable name")
        op = self.next()
        if op == "}":
            return self.env.get(name, "")
        colon = op == ":"
        if colon:
            op = self.next()
        if op not in ("-", "+", "?"):
            raise WordError(f"unsupported modifier ({':' if colon else ''}{op}) in substitution of {name} "
                            f"in {self.text!r}")
        word = self._operand()
        value = self.env.get(name)
        is_set = value is not None and (value != "" or not colon)
        if op == "-":
            return value if is_set else word
        if op == "+":
            return word if is_set else ""
        if not is_set:  # "?"
            raise WordError(f"{name}: {word or 'is not allowed to be unset'}")
        return value

    def _operand(self) -> str:
        """The word after a modifier up to the matching ``}``, itself processed."""
        out: list[str] = []
        while True:
            ch = self.peek()
            if ch == "":
                raise WordError(f"missing '}}' in {self.text!r}")
            self.pos += 1
            if ch == "}":
                return "".join(out)
            if ch == "'":
                out.append(self._single())
            elif ch == '"':
                out.append(self._double())
            elif ch == self.escape:
                out.append(self.next())
            elif ch == "$":
                out.append(self._dollar())
            else:
                out.append(ch)

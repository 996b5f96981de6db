"""BuildKit's word processing: quotes, escapes and ${VAR} forms."""
from __future__ import annotations

import pytest

from node.build.words import WordError, expand, expand_fields, split_words

ENV = {"A": "apple", "E": "", "SP": "x y"}


@pytest.mark.parametrize("word, out", [
    ("$A", "apple"), ("${A}", "apple"), ("${A}s", "apples"), ("$NOPE", ""),
    ("${A:-d}", "apple"), ("${E:-d}", "d"), ("${E-d}", ""), ("${NOPE-d}", "d"), ("${NOPE:-$A}", "apple"),
    ("${A:+set}", "set"), ("${E:+set}", ""), ("${E+set}", "set"), ("${NOPE+set}", ""),
    ("'$A'", "$A"), ('"$A b"', "apple b"), ('"\\$A"', "$A"), ("\\$A", "$A"), ("a\\ b", "a b"),
    ('"it\'s"', "it's"), ("$", "$"), ("${A:-a b}", "apple"), ("${NOPE:-'q d'}", "q d"),
])
def test_expand(word, out):
    assert expand(word, ENV) == out


def test_expand_backtick_escape():
    assert expand("a`$b", {}, escape="`") == "a$b"
    assert expand("c:\\dir", {}, escape="`") == "c:\\dir"


def test_required_and_errors():
    with pytest.raises(WordError, match="NOPE: must be set"):
        expand("${NOPE:?must be set}", ENV)
    assert expand("${A:?x}", ENV) == "apple"
    for bad in ("'open", '"open', "${A", "${}", "${A:%x}"):
        with pytest.raises(WordError):
            expand(bad, ENV)


def test_split_words_keeps_quotes():
    assert split_words('a=1 b="x y" c=\'z w\' d=e\\ f') == ["a=1", 'b="x y"', "c='z w'", "d=e\\ f"]


def test_fields():
    assert expand_fields('80/tcp "8 0" $SP', ENV) == ["80/tcp", "8 0", "x", "y"]

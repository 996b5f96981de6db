"""The Dockerfile parser (BuildKit's grammar) and the instruction checks."""
from __future__ import annotations

import pytest

from node.build.dockerfile import DockerfileError, parse
from node.build.instructions import interpret_all
from node.build.stages import plan


def cmds(text):
    return [(i.cmd, i.args) for i in parse(text).instructions]


def test_instructions_lines_and_case():
    df = parse("from busybox\n\n# a comment\nRun echo hi\n")
    assert [(i.cmd, i.line, i.args) for i in df.instructions] == [("from", 1, "busybox"), ("run", 4, "echo hi")]


def test_continuations_skip_comments_and_blank_lines():
    df = parse("FROM a\nRUN echo a \\\n  # inside\n\n  b \\\n  c\nCMD x\n")
    run = df.instructions[1]
    assert run.args == "echo a   b   c" and run.line == 2
    assert df.instructions[2].line == 7


def test_escape_directive_backtick():
    df = parse("# escape=`\nFROM a\nRUN echo \\path `\n  more\n")
    assert df.escape == "`"
    assert df.instructions[1].args == "echo \\path   more"


def test_directives_only_at_the_top_and_syntax_noted():
    df = parse("# syntax=docker/dockerfile:1\n# escape=\\\nFROM a\n# escape=`\nRUN x \\\n y\n")
    assert df.escape == "\\" and df.notes and "ignored" in df.notes[0]
    assert df.instructions[1].args == "x  y"
    with pytest.raises(DockerfileError, match="invalid escape token"):
        parse("# escape=x\nFROM a\n")


def test_json_and_shell_forms():
    df = parse('FROM a\nCMD ["sh", "-c", "echo"]\nCMD [not json\nENTRYPOINT echo hi\n')
    assert df.instructions[1].json_args == ["sh", "-c", "echo"]
    assert df.instructions[2].json_args is None
    assert df.instructions[3].json_args is None


def test_flags_are_split_off():
    df = parse("FROM a\nCOPY --from=b --chown=1:2 x /y\nRUN --mount=type=cache,target=/c make\n")
    assert df.instructions[1].flags == ["--from=b", "--chown=1:2"] and df.instructions[1].args == "x /y"
    assert df.instructions[2].flags == ["--mount=type=cache,target=/c"]


def test_heredocs():
    text = ("FROM a\nRUN <<EOF\necho one\necho two\nEOF\nCOPY <<-'END' /f\n\tliteral $X\n\tEND\n"
            "RUN cat <<A <<B\na\nA\nb\nB\nCMD done\n")
    df = parse(text)
    run = df.instructions[1]
    assert run.heredocs[0].content == "echo one\necho two\n" and run.heredocs[0].expand
    copy = df.instructions[2]
    assert copy.heredocs[0].content == "literal $X\n" and not copy.heredocs[0].expand
    two = df.instructions[3]
    assert [h.content for h in two.heredocs] == ["a\n", "b\n"]
    assert df.instructions[4].cmd == "cmd" and df.instructions[4].line == 14


def test_unterminated_heredoc():
    with pytest.raises(DockerfileError, match=r"Dockerfile:2: unterminated heredoc 'EOF'"):
        parse("FROM a\nRUN <<EOF\necho\n")


@pytest.mark.parametrize("text, line, reason", [
    ("FROM a\nFOO bar\n", 2, "unknown instruction: FOO"),
    ("FROM a\nCOPY --bogus=1 a b\n", 2, "unknown flag: --bogus"),
    ("FROM a\nCOPY onlyone\n", 2, "COPY requires at least two arguments"),
    ("FROM a b c d\n", 1, "FROM requires either one or three arguments"),
    ("FROM a AS 1x\n", 1, "invalid name for build stage"),
    ("RUN x\n", 1, "no build stage"),
    ("FROM a\nLABEL novalue\n", 2, "can't find ="),
    ("FROM a\nENV onlykey\n", 2, "ENV must have two arguments"),
    ("FROM a\nSHELL sh -c\n", 2, "SHELL requires the arguments to be in JSON form"),
    ("FROM a\nCOPY --chmod=9z a b\n", 2, "invalid chmod"),
    ("FROM a\nHEALTHCHECK FOO x\n", 2, "unknown type for HEALTHCHECK"),
    ("FROM a\nONBUILD FROM x\n", 2, "isn't allowed as an ONBUILD trigger"),
    ("FROM a\nRUN --network=weird x\n", 2, "unsupported network mode"),
    ("FROM a\nRUN --security=insecure x\n", 2, "always run sandboxed"),
    ("FROM a\nCOPY --exclude=*.md . /x\n", 2, "unknown flag: --exclude"),
])
def test_bad_input_names_the_line(text, line, reason):
    with pytest.raises(DockerfileError) as info:
        plan(interpret_all(parse(text)), None, {})
    assert str(info.value).startswith(f"Dockerfile:{line}: ")
    assert reason in str(info.value)


def test_key_value_forms():
    from node.build.instructions import interpret
    df = parse('FROM a\nENV A=1 B="two words" C=3\nENV D some value\nLABEL "x.y"=z\n')
    env, legacy, label = [interpret(i) for i in df.instructions[1:]]
    assert env.pairs == [("A", "1"), ("B", '"two words"'), ("C", "3")]
    assert legacy.pairs == [("D", "some value")]
    assert label.pairs == [('"x.y"', "z")]


def test_plan_builds_only_needed_stages():
    text = ("ARG BASE=busybox\nFROM $BASE AS base\nRUN a\nFROM busybox AS unused\nRUN b\n"
            "FROM base AS mid\nCOPY --from=0 /x /y\nFROM scratch\nCOPY --from=mid /y /z\n")
    p = plan(interpret_all(parse(text)), None, {"BASE": "busybox"})
    assert [s.label for s in p.order] == ["base", "mid", "stage-3"]
    p = plan(interpret_all(parse(text)), "mid", {"BASE": "busybox"})
    assert [s.label for s in p.order] == ["base", "mid"]
    with pytest.raises(DockerfileError, match="target stage 'nope' could not be found"):
        plan(interpret_all(parse(text)), "nope", {})

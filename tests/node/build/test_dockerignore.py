"""Docker's .dockerignore rules."""
from __future__ import annotations

import pytest

from node.build.dockerignore import IgnoreMatcher, read_ignore_file


def ignored(patterns, path):
    return IgnoreMatcher(patterns).ignored(path)


@pytest.mark.parametrize("patterns, path, expected", [
    (["*.log"], "a.log", True),
    (["*.log"], "dir/a.log", False),            # * stays in one component
    (["**/*.log"], "dir/sub/a.log", True),
    (["**/*.log"], "a.log", True),              # ** may be zero directories
    (["dir"], "dir/deep/file", True),           # a parent match excludes what is below
    (["/dir/"], "dir/x", True),                 # leading and trailing / cleaned
    (["./a/../b"], "b", True),
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md", "README*"], "README.md", True),  # the last match wins
    (["dir", "!dir/keep"], "dir/keep", False),
    (["dir", "!dir/keep"], "dir/other", True),
    (["a?c"], "abc", True), (["a?c"], "a/c", False),
    (["[a-c]x"], "bx", True), (["[!a-c]x"], "bx", False), (["[!a-c]x"], "dx", True),
    (["# comment", "", "  spaced.txt  "], "spaced.txt", True),
    (["node_modules/**"], "node_modules/x/y", True),
    (["**"], "anything/at/all", True),
    (["x\\*"], "x*", True), (["x\\*"], "xa", False),
])
def test_matching(patterns, path, expected):
    assert ignored(patterns, path) is expected


def test_exceptions_tell_the_walk_to_descend():
    m = IgnoreMatcher(["build", "!build/keep/this"])
    assert m.may_include_below("build") and m.may_include_below("build/keep")
    assert not m.may_include_below("other")
    assert not IgnoreMatcher(["build"]).may_include_below("build")


def test_dockerfile_specific_ignore_file_wins(tmp_path):
    (tmp_path / ".dockerignore").write_text("a.txt\n")
    df = tmp_path / "dev.Dockerfile"
    df.write_text("FROM x\n")
    assert read_ignore_file(tmp_path, df).ignored("a.txt")
    (tmp_path / "dev.Dockerfile.dockerignore").write_text("b.txt\n")
    m = read_ignore_file(tmp_path, df)
    assert m.ignored("b.txt") and not m.ignored("a.txt")
    assert not read_ignore_file(tmp_path / "nowhere", None).ignored("a.txt")

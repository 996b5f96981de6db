"""Cache keys: the parent, the instruction, the sources' content and metadata (never mtimes);
and the context's refusals (.., symlinks out, ignored files)."""
from __future__ import annotations

import os

import pytest

from node.build.cache import step_key
from node.build.context import Context, ContextError, checksum
from node.build.dockerignore import IgnoreMatcher


def test_step_key_depends_on_parent_and_every_part():
    base = step_key("p", "run", ["sh", "-c", "x"], ["A=1"])
    assert base == step_key("p", "run", ["sh", "-c", "x"], ["A=1"])
    assert base != step_key("q", "run", ["sh", "-c", "x"], ["A=1"])
    assert base != step_key("p", "run", ["sh", "-c", "y"], ["A=1"])
    assert base != step_key("p", "run", ["sh", "-c", "x"], ["A=2"])


def make_ctx(tmp_path, ignore=()):
    (tmp_path / "a.txt").write_text("one\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "b.txt").write_text("two\n")
    return Context(tmp_path, IgnoreMatcher(list(ignore)))


def digest(ctx, src="."):
    return checksum(ctx, ctx.sources(src))


def test_mtime_does_not_change_the_checksum_but_content_and_mode_do(tmp_path):
    ctx = make_ctx(tmp_path)
    first = digest(ctx)
    os.utime(tmp_path / "a.txt", (1, 1))
    assert digest(ctx) == first
    os.chmod(tmp_path / "a.txt", 0o755)
    second = digest(ctx)
    assert second != first
    (tmp_path / "dir" / "b.txt").write_text("changed\n")
    assert digest(ctx) != second


def test_ignored_files_are_not_in_the_checksum(tmp_path):
    ctx = make_ctx(tmp_path, ["dir/b.txt"])
    first = digest(ctx)
    (tmp_path / "dir" / "b.txt").write_text("changed\n")
    assert digest(ctx) == first
    with pytest.raises(ContextError, match="excluded by .dockerignore"):
        ctx.sources("dir/b.txt")


def test_paths_outside_the_context_are_refused(tmp_path):
    ctx = make_ctx(tmp_path / "ctx" if (tmp_path / "ctx").mkdir() is None else tmp_path)
    with pytest.raises(ContextError, match="outside the build context"):
        ctx.sources("../x")
    with pytest.raises(ContextError, match="outside the build context"):
        ctx.sources("dir/../../x")
    assert ctx.sources("/a.txt")[0].rel == "a.txt"  # a leading / is the context root


def test_symlinks_that_leave_the_context_are_refused(tmp_path):
    root = tmp_path / "ctx"
    root.mkdir()
    ctx = make_ctx(root)
    os.symlink("/etc", root / "abs")
    os.symlink("../../", root / "dir" / "up")
    os.symlink("dir/b.txt", root / "inside")
    with pytest.raises(ContextError, match="leaves the build context"):
        ctx.sources("abs/passwd")
    with pytest.raises(ContextError, match="leaves the build context"):
        ctx.sources("dir/up/x")
    assert ctx.sources("inside")[0].rel == "dir/b.txt"


def test_globs_and_missing_sources(tmp_path):
    ctx = make_ctx(tmp_path)
    (tmp_path / "c.txt").write_text("3")
    assert [s.rel for s in ctx.sources("*.txt")] == ["a.txt", "c.txt"]
    assert [s.rel for s in ctx.sources("d*/*.txt")] == ["dir/b.txt"]
    assert ctx.sources("*.nope") == []  # BuildKit allows an empty wildcard; COPY checks the total
    with pytest.raises(ContextError, match="not found"):
        ctx.sources("missing")


def test_rootfs_context_keeps_links_inside(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "f").write_text("x")
    os.symlink("/etc", tmp_path / "link")
    os.symlink("../../../etc", tmp_path / "climb")
    ctx = Context(tmp_path, rootfs=True)
    assert ctx.sources("link/f")[0].rel == "etc/f"
    assert ctx.sources("climb/f")[0].rel == "etc/f"

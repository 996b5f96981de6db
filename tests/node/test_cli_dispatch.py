"""The dispatcher registers only the owning command group for a known command."""
from __future__ import annotations

import subprocess
import sys

import pytest

from node.__main__ import COMMAND_OWNERS, build_parser, requested_command


def _top_level_choices(parser) -> set[str]:
    sub = next(a for a in parser._actions if a.dest == "command")
    return set(sub.choices)


def test_owner_map_matches_what_each_module_registers():
    full = _top_level_choices(build_parser())
    assert full == set(COMMAND_OWNERS), "COMMAND_OWNERS is out of date with node/cli/*"
    for command, module in COMMAND_OWNERS.items():
        assert command in _top_level_choices(build_parser(command)), (command, module)


@pytest.mark.parametrize("argv, expected", [
    (["run", "--rm", "img", "true"], "run"),
    (["--root", "/r", "run", "img"], "run"),
    (["--root=/r", "--debug", "pull", "x"], "pull"),
    (["--debug", "network", "ls"], "network"),
    (["--help", "run"], None),          # top-level help must list everything
    (["--ro", "/r", "run"], None),      # an abbreviation: let argparse decide
    (["nosuch"], None),
    ([], None),
])
def test_requested_command(argv, expected):
    assert requested_command(argv) == expected


def test_help_still_lists_every_group():
    out = subprocess.run([sys.executable, "-m", "node", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for command in ("run", "pull", "images", "network", "volume", "login"):
        assert f"    {command} " in out


def test_unknown_command_is_named_as_docker_does():
    proc = subprocess.run([sys.executable, "-m", "node", "nosuch"], capture_output=True, text=True)
    assert proc.returncode == 125
    assert "dockyard: 'nosuch' is not a dockyard command" in proc.stderr
    assert "See 'dockyard --help'." in proc.stderr


@pytest.mark.parametrize("argv, owner", [(["run", "--bogus", "img"], "dockyard run"),
                                         (["--root", "/tmp/x", "pull", "--nope", "img"], "dockyard pull")])
def test_unknown_flag_names_the_flag_and_the_command(argv, owner):
    proc = subprocess.run([sys.executable, "-m", "node", *argv], capture_output=True, text=True)
    assert proc.returncode == 125
    lines = proc.stderr.strip().splitlines()
    assert lines[-2:] == [f"{owner}: unknown flag: {argv[-2]}", f"See '{owner} --help'."]
    assert lines[0].startswith(f"usage: {owner} ")


def test_version():
    proc = subprocess.run([sys.executable, "-m", "node", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("Dockyard version ")


def test_it_without_a_terminal_is_refused():
    proc = subprocess.run([sys.executable, "-m", "node", "--root", "/nonexistent-root", "run", "-it", "img", "sh"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1 and proc.stderr.strip() == "Error: the input device is not a TTY"


@pytest.mark.parametrize("argv", [
    ["--root", "/r", "run", "--rm", "--network", "none", "-e", "A=1", "-v", "/a:/b", "img", "sh", "-c", "x"],
    ["create", "--name", "c1", "-m", "10m", "img"],
    ["rm", "-f", "a", "b"],
    ["volume", "create", "v1"],
    ["image", "ls"],
    ["pull", "-q", "busybox"],
    ["network", "connect", "--alias", "x", "n", "c"],
])
def test_one_command_parser_parses_like_the_full_one(argv):
    full = vars(build_parser().parse_args(argv))
    one = vars(build_parser(requested_command(argv)).parse_args(argv))
    assert full.keys() == one.keys()
    for key in full:
        if key == "func":  # wrapped handlers: compare what they wrap
            assert getattr(full[key], "__qualname__", None) == getattr(one[key], "__qualname__", None)
        else:
            assert full[key] == one[key], key


def test_one_command_parser_builds_only_that_command():
    sub = next(a for a in build_parser("run")._actions if a.dest == "command")
    assert set(sub.choices) == {"run"}


@pytest.mark.parametrize("columns", [None, "50", "200", "0", "junk"])
def test_help_width_is_what_shutil_would_give(monkeypatch, columns):
    import shutil

    from node.cli.common import terminal_columns as _terminal_columns
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert _terminal_columns() == shutil.get_terminal_size().columns


def test_run_path_does_not_import_heavy_modules():
    code = ("import sys; sys.argv = ['dockyard', 'run', '--help']\n"
            "from node.__main__ import build_parser, requested_command\n"
            "build_parser(requested_command(sys.argv[1:]))\n"
            "import node.images.store, node.engine.start, node.engine.create\n"
            "print(sorted({'shutil', 'typing', 'dataclasses', 'tempfile'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

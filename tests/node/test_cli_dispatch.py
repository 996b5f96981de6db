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


def test_unknown_command_lists_every_choice():
    proc = subprocess.run([sys.executable, "-m", "node", "nosuch"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr and "'pull'" in proc.stderr and "'run'" in proc.stderr

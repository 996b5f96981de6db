"""node/runtime/command.py (the built-in runtime as a one-shot `run` command) and
node/runtime/specfile.py (config.json read without the json package)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from node.runtime import specfile
from tests.helpers import need_root
from tests.node.runtime.test_builtin import _bundle, _spec, rootfs  # noqa: F401 - a fixture

COMMAND = str(Path(__file__).resolve().parents[3] / "node" / "runtime" / "command.py")


@pytest.mark.parametrize("text", [
    "{}", ' {"a": [1, 2.5, -3e2, true, false, null, "x\\u00e9"]} \n', "[NaN, -Infinity]", '"s"', "7",
])
def test_specfile_parses_as_json_does(text):
    assert repr(specfile.loads(text)) == repr(json.loads(text))


@pytest.mark.parametrize("text", ['{"a": 1} x', '{"a": }', "", "  ", "\ufeff{}", '{"a": "\x01"}', "[1,"])
def test_specfile_rejects_as_json_does(text):
    with pytest.raises(json.JSONDecodeError) as ours:
        specfile.loads(text)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(text)
    assert str(ours.value) == str(theirs.value)


def test_command_imports_no_json_re_enum_or_signal(tmp_path):
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import node.runtime.builtin, node.runtime.init; "
             "print(' '.join(m for m in ('json', 're', 'enum', 'signal', 'socket', '_socket') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-I", "-S", "-c", probe, str(Path(COMMAND).parents[2])],
                         capture_output=True, text=True, check=True)
    assert res.stdout.strip() == ""


def _command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-I", "-S", COMMAND, *args], capture_output=True, text=True, timeout=60)


def test_command_usage_errors():
    assert _command().returncode == 2
    assert _command("run", "--nope", "x").returncode == 2


@pytest.mark.root
def test_command_runs_a_bundle_and_returns_its_exit_status(tmp_path, rootfs):  # noqa: F811
    need_root()
    cg = f"/dockyard-test-cmd-{os.getpid()}"
    script = "cat /sys/class/net/lo/flags; hostname; echo out; echo err >&2; exit 7"
    spec = _spec(["/bin/sh", "-c", script], cg)
    spec["mounts"].append({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro", "nosuid"]})
    bundle = _bundle(tmp_path, rootfs, spec)
    res = _command("run", "--bundle", bundle, "cmd-test")
    assert res.returncode == 7, res.stderr
    flags, hostname, out = res.stdout.split()
    assert int(flags, 16) & 1  # loopback up
    assert (hostname, out) == ("bundle", "out") and res.stderr == "err\n"
    assert not os.path.exists(f"/sys/fs/cgroup/pids{cg}")  # the cgroup went with the container


@pytest.mark.root
def test_command_reports_a_missing_program_as_127(tmp_path, rootfs):  # noqa: F811
    need_root()
    bundle = _bundle(tmp_path, rootfs, _spec(["/no/such/program"], f"/dockyard-test-cmd-{os.getpid()}"))
    res = _command("run", "--bundle", bundle, "cmd-test-missing")
    assert res.returncode == 127
    assert "no such file or directory" in res.stderr
    assert not os.path.exists(f"/sys/fs/cgroup/pids/dockyard-test-cmd-{os.getpid()}")

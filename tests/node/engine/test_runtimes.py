"""node/engine/runtimes.py: one protocol for the built-in runtime, runc and crun."""
from __future__ import annotations

import pytest

from node.engine import EngineError
from node.engine.runtimes import NAMES, Runtime, get_runtime
from tests.helpers import need_tool

VERBS = ("create", "start", "exec", "wait_exec", "kill", "pause", "resume", "state", "oom_killed",
         "kill_all", "delete")


@pytest.mark.parametrize("name", NAMES)
def test_every_runtime_speaks_the_whole_protocol(name, tmp_path):
    if name != "builtin":
        need_tool(name)
    runtime = get_runtime(name, tmp_path)
    assert isinstance(runtime, Runtime) and runtime.name == name
    for verb in VERBS:
        assert getattr(type(runtime), verb) is not getattr(object, verb, None), verb
    assert type(runtime).create is not Runtime.create and type(runtime).delete is not Runtime.delete


def test_unknown_runtime_is_a_clear_error(tmp_path):
    with pytest.raises(EngineError, match="unknown or invalid runtime name: youki"):
        get_runtime("youki", tmp_path)


def test_a_dead_process_is_stopped(tmp_path):
    assert get_runtime("builtin", tmp_path).state("0" * 64, 0, 0) == "stopped"

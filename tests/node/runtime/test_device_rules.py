"""cgroup v1 device rules: the repeats left out (node.runtime.cgroups.device_rule_writes) and the
one-file-per-name writes leave the kernel's devices.list exactly as one file per rule did."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from node.runtime import cgroups
from node.runtime.builtin import RUNTIME_DEVICE_RULES
from tests.helpers import need, need_root

ALLOW_NULL = {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
DENY_ALL = {"allow": False, "access": "rwm"}
ALLOW_ALL = {"allow": True, "access": "rwm"}
DOCKER = [DENY_ALL] + [
    {"allow": True, "type": t, "major": ma, "minor": mi, "access": acc} for t, ma, mi, acc in (
        ("c", None, None, "m"), ("b", None, None, "m"), ("c", 1, 3, "rwm"), ("c", 1, 8, "rwm"),
        ("c", 1, 7, "rwm"), ("c", 5, 0, "rwm"), ("c", 1, 5, "rwm"), ("c", 1, 9, "rwm"),
        ("c", 5, 1, "rwm"), ("c", 136, None, "rwm"), ("c", 5, 2, "rwm"), ("c", 10, 200, "rwm"))]
SEQUENCES = {
    "docker + runtime": DOCKER + RUNTIME_DEVICE_RULES,
    "re-allowed after a deny": [DENY_ALL, ALLOW_NULL, {**ALLOW_NULL, "allow": False}, ALLOW_NULL],
    "allow-all between": [DENY_ALL, ALLOW_NULL, ALLOW_ALL, {**ALLOW_NULL, "allow": False}, ALLOW_NULL],
    "other access bits": [DENY_ALL, ALLOW_NULL, {**ALLOW_NULL, "access": "r"}, ALLOW_NULL],
}


def test_only_repeats_within_a_run_of_allows_are_left_out():
    writes = cgroups.device_rule_writes(DOCKER + RUNTIME_DEVICE_RULES)
    assert writes == cgroups.device_rule_writes(DOCKER)  # every runtime rule repeats one of Docker's
    assert writes[0] == ("devices.deny", "a") and len(writes) == 13
    # a deny or an "a" in between: the allow is written again
    again = cgroups.device_rule_writes(SEQUENCES["re-allowed after a deny"])
    assert again == [("devices.deny", "a"), ("devices.allow", "c 1:3 rwm"),
                     ("devices.deny", "c 1:3 rwm"), ("devices.allow", "c 1:3 rwm")]
    assert len(cgroups.device_rule_writes(SEQUENCES["allow-all between"])) == 5
    assert len(cgroups.device_rule_writes(SEQUENCES["other access bits"])) == 3


def _one_file_per_rule(d: str, rules: list[dict]) -> None:
    """The way the rules were written before: every rule, each through its own open file."""
    for rule in rules:
        kind = rule.get("type") or "a"
        major = "*" if rule.get("major") in (None, -1) else str(rule["major"])
        minor = "*" if rule.get("minor") in (None, -1) else str(rule["minor"])
        line = "a" if kind == "a" else f"{kind} {major}:{minor} {rule.get('access') or 'rwm'}"
        with open(os.path.join(d, "devices.allow" if rule.get("allow") else "devices.deny"), "w") as f:
            f.write(line)


@pytest.mark.root
@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_kernel_device_list_is_the_same(name):
    need_root()
    root = Path("/sys/fs/cgroup/devices")
    need(root.is_dir() and not cgroups.is_v2(), "needs the v1 devices hierarchy")
    parent = root / f"dockyard-devrules-{os.getpid()}"
    old, new = parent / "old", parent / "new"
    try:
        old.mkdir(parents=True), new.mkdir()
        _one_file_per_rule(str(old), SEQUENCES[name])
        cgroups.write_device_rules(str(new), SEQUENCES[name])
        listed = (new / "devices.list").read_text()
        assert listed == (old / "devices.list").read_text()
        if name == "docker + runtime":
            assert "a *:* rwm" not in listed and "c 10:200 rwm" in listed
    finally:
        for d in (old, new, parent):
            if d.exists():
                d.rmdir()

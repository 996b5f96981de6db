"""The built-in runtime's pure parts, without root: mount options, path resolution inside a
rootfs, capability masks, program lookup, and cgroup v1/v2 code run against a fake hierarchy."""
from __future__ import annotations

import os

import pytest

from node.runtime import capabilities, cgroups, syscalls as sc
from node.runtime.mounts import parse_options, secure_join
from node.runtime.process import ProcessError, find_program


def test_parse_options_splits_flags_propagation_and_data():
    flags, propagation, data = parse_options(["nosuid", "noexec", "ro", "mode=755", "size=65536k", "rprivate"])
    assert flags == sc.MS_NOSUID | sc.MS_NOEXEC | sc.MS_RDONLY
    assert propagation == sc.MS_PRIVATE | sc.MS_REC
    assert data == "mode=755,size=65536k"
    assert parse_options(["ro", "rw"])[0] == 0
    assert parse_options(["rbind"])[0] == sc.MS_BIND | sc.MS_REC


def test_secure_join_never_leaves_the_root(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    os.symlink("/outside", root / "abs")           # absolute: relative to the rootfs, not the host
    os.symlink("../../../../outside", root / "etc" / "up")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    assert secure_join(str(root), "/abs/x") == str(root / "outside" / "x")
    assert secure_join(str(root), "/etc/up/y") == str(root / "outside" / "y")
    assert secure_join(str(root), "/../../etc/hosts") == str(root / "etc" / "hosts")
    assert secure_join(str(root), "/new/dir") == str(root / "new" / "dir")
    with pytest.raises(OSError):
        secure_join(str(root), "/loop1")


def test_docker_default_capabilities_mask():
    assert capabilities.mask(capabilities.DOCKER_DEFAULT) == 0xA80425FB
    assert capabilities.names(capabilities.mask(["CAP_KILL", "chown"])) == ["CAP_CHOWN", "CAP_KILL"]


def test_find_program_maps_failures_to_docker_codes(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "tool").write_text("#!/bin/sh\n")
    os.chmod(bindir / "tool", 0o755)
    (bindir / "plain").write_text("data")
    env = [f"PATH={bindir}"]
    assert find_program("tool", env) == str(bindir / "tool")
    with pytest.raises(ProcessError) as e:
        find_program("missing", env)
    assert e.value.exit_code == 127 and "not found in $PATH" in str(e.value)
    with pytest.raises(ProcessError) as e:
        find_program(str(bindir / "plain"), env)
    assert e.value.exit_code == 126
    with pytest.raises(ProcessError) as e:
        find_program("/no/such/file", env)
    assert e.value.exit_code == 127


def _fake_v1(root):
    for c in ("memory", "cpu", "pids", "freezer", "devices", "cpuset"):
        (root / c).mkdir(parents=True)
    (root / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (root / "cpuset" / "cpuset.mems").write_text("0\n")
    (root / "memory" / "memory.memsw.limit_in_bytes").write_text("")


def test_v1_cgroup_writes_limits_under_its_root(tmp_path):
    _fake_v1(tmp_path)
    assert not cgroups.is_v2(str(tmp_path))
    cg = cgroups.open_cgroup("/dockyard/abc", str(tmp_path))
    # the fake parent has no memsw file for the leaf yet: create the leaf dir first like the kernel would
    (tmp_path / "memory" / "dockyard" / "abc").mkdir(parents=True)
    (tmp_path / "memory" / "dockyard" / "abc" / "memory.memsw.limit_in_bytes").write_text("")
    cg.create({"memory": {"limit": 16 << 20, "swap": 16 << 20}, "cpu": {"quota": 50000, "period": 100000},
               "pids": {"limit": 12}, "devices": [{"allow": False, "access": "rwm"},
                                                   {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]})
    leaf = lambda c, f: (tmp_path / c / "dockyard" / "abc" / f).read_text()  # noqa: E731
    assert leaf("memory", "memory.limit_in_bytes") == str(16 << 20)
    assert leaf("memory", "memory.memsw.limit_in_bytes") == str(16 << 20)
    assert leaf("cpu", "cpu.cfs_quota_us") == "50000" and leaf("cpu", "cpu.cfs_period_us") == "100000"
    assert leaf("pids", "pids.max") == "12"
    assert leaf("devices", "devices.deny") == "a" and leaf("devices", "devices.allow") == "c 1:3 rwm"
    assert leaf("cpuset", "cpuset.cpus") == "0-1"                       # inherited, or tasks are refused
    (tmp_path / "memory" / "dockyard" / "abc" / "memory.oom_control").write_text(
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert cg.oom_killed()


def test_v2_cgroup_enables_controllers_and_writes_limits(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    assert cgroups.is_v2(str(tmp_path))
    cg = cgroups.open_cgroup("/dockyard/abc", str(tmp_path))
    (tmp_path / "dockyard" / "abc").mkdir(parents=True)
    for name in ("memory.max", "memory.swap.max", "cpu.max", "pids.max"):  # what the kernel would provide
        (tmp_path / "dockyard" / "abc" / name).write_text("")
    cg.create({"memory": {"limit": 32 << 20, "swap": 32 << 20}, "cpu": {"quota": 150000, "period": 100000},
               "pids": {"limit": 50}})
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (tmp_path / "dockyard" / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    leaf = tmp_path / "dockyard" / "abc"
    assert (leaf / "memory.max").read_text() == str(32 << 20)
    assert (leaf / "memory.swap.max").read_text() == "0"                # OCI swap counts memory too
    assert (leaf / "cpu.max").read_text() == "150000 100000"
    assert (leaf / "pids.max").read_text() == "50"
    (leaf / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cg.oom_killed()

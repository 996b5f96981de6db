"""cgroup limits that bind: memory (OOM kill recorded), pids (a fork bomb stops), cpus (CFS quota)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.node_run_support import CGROUP_PARENT, busybox_layer, dy, leaks, runtime  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.e2e]


def test_memory_limit_oom_kills(dy, runtime):
    r = dy("run", "--name", "hog", "--runtime", runtime, "--memory", "16m", "busybox", "sh", "-c", "tail /dev/zero")
    assert r.returncode == 137
    state = dy.inspect("hog")["State"]
    assert state["OOMKilled"] is True and state["ExitCode"] == 137
    assert leaks(dy.root, dy.inspect("hog")["Id"]) == []


def test_small_program_within_memory_limit_is_not_oom(dy):
    dy.out("run", "--name", "fine", "--memory", "64m", "busybox", "true")
    assert dy.inspect("fine")["State"]["OOMKilled"] is False


def test_pids_limit_stops_fork_bomb(dy, runtime):
    cid = dy.out("run", "-d", "--runtime", runtime, "--pids-limit", "12", "busybox", "sleep", "30").strip()
    pids = Path(f"/sys/fs/cgroup/pids/{CGROUP_PARENT}/{cid}")
    assert (pids / "pids.max").read_text().strip() == "12"
    bomb = dy("exec", cid, "sh", "-c", "i=0; while [ $i -lt 40 ]; do sleep 60 >/dev/null 2>&1 & i=$((i+1)); done")
    assert bomb.returncode != 0 and "fork" in bomb.stderr.lower()
    assert int((pids / "pids.current").read_text()) <= 12
    assert int((pids / "pids.events").read_text().split()[1]) > 0     # forks were refused
    assert dy.inspect(cid)["State"]["Running"]                        # the container itself lives on


def test_cpus_and_memory_written_to_cgroup(dy, runtime):
    cid = dy.out("run", "-d", "--runtime", runtime, "--cpus", "0.5", "--memory", "32m", "busybox", "sleep", "30").strip()
    cpu = Path(f"/sys/fs/cgroup/cpu/{CGROUP_PARENT}/{cid}")
    assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
    assert (cpu / "cpu.cfs_period_us").read_text().strip() == "100000"
    memory = Path(f"/sys/fs/cgroup/memory/{CGROUP_PARENT}/{cid}")
    assert int((memory / "memory.limit_in_bytes").read_text()) == 32 * 1024 * 1024
    dy.out("rm", "-f", cid)
    assert not cpu.exists() and not memory.exists()


def test_default_pids_limit_without_the_flag(dy, runtime):
    """Issue #13 item 12: without --pids-limit a container used to get pids.max=max."""
    from node.engine.settings import DEFAULT_PIDS_LIMIT
    cid = dy.out("run", "-d", "--runtime", runtime, "busybox", "sleep", "30").strip()
    pids = Path(f"/sys/fs/cgroup/pids/{CGROUP_PARENT}/{cid}")
    assert (pids / "pids.max").read_text().strip() == str(DEFAULT_PIDS_LIMIT)
    assert dy.inspect(cid)["HostConfig"]["PidsLimit"] == DEFAULT_PIDS_LIMIT


def test_node_settings_set_the_default_and_the_flag_wins(dy):
    (dy.root).mkdir(parents=True, exist_ok=True)
    (dy.root / "node.json").write_text('{"default-pids-limit": 64}\n')
    cid = dy.out("run", "-d", "busybox", "sleep", "30").strip()
    assert Path(f"/sys/fs/cgroup/pids/{CGROUP_PARENT}/{cid}/pids.max").read_text().strip() == "64"
    free = dy.out("run", "-d", "--pids-limit", "-1", "busybox", "sleep", "30").strip()
    assert Path(f"/sys/fs/cgroup/pids/{CGROUP_PARENT}/{free}/pids.max").read_text().strip() == "max"
    (dy.root / "node.json").write_text('{"default-pids-limit": "lots"}\n')
    r = dy("run", "--rm", "busybox", "true")
    assert r.returncode == 125 and r.stderr.count("\n") == 1 and "default-pids-limit" in r.stderr

"""node.runtime.cgroups.prewarm_attach: re-writes our own PID into our own cgroup (a no-op move
that starts the kernel's slow RCU wait early) and never moves the process anywhere."""
from __future__ import annotations

import os
import time

from node.runtime import cgroups
from tests.helpers import need, need_root


def test_own_procs_file_is_a_cgroup_we_are_in():
    path = cgroups._own_procs_file(cgroups.DEFAULT_ROOT)
    need(path is not None, "no cgroup hierarchy of ours under /sys/fs/cgroup")
    with open(path) as f:
        assert str(os.getpid()) in f.read().split()


def test_prewarm_leaves_the_process_where_it_was():
    need_root()
    need(cgroups._own_procs_file(cgroups.DEFAULT_ROOT) is not None, "no cgroup hierarchy of ours")
    before = open("/proc/self/cgroup").read()
    cgroups.prewarm_attach()
    time.sleep(0.1)  # the background write is done by now (one RCU grace period)
    assert open("/proc/self/cgroup").read() == before


def test_prewarm_ignores_a_root_without_cgroups(tmp_path):
    assert cgroups._own_procs_file(str(tmp_path)) is None
    cgroups.prewarm_attach(str(tmp_path))  # nothing to do, nothing raised

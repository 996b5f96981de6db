"""Issue #13 item 1: while an operator runs `dockyard exec`, the helper that enters the container's
PID namespace is a fork of the host's Python. A process inside the container must not be able to
read its environment (the operator's, secrets included), open its executable (the host's python)
or open its memory for writing (code injection before seccomp applies): runc's CVE-2016-9962 and
CVE-2019-5736.

The container's PID 1 polls /proc for processes whose command line is the agent's (the helper
before it execs) and tries the three accesses on each; the test runs 50 execs beside it.
"""
from __future__ import annotations

import time

import pytest

from tests.e2e.node_run_support import busybox_layer, dy, runtime  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.e2e]

MARKER = "dockyard-operator-secret-7f3a"
# the helper's command line before exec is the agent's: this launcher's path is in it
POLLER = r"""
while [ ! -e /tmp/stop ]; do
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = 1 ] && continue
    grep -q node_run_support $d/cmdline 2>/dev/null || continue
    echo "seen $p"
    grep -q %(marker)s $d/environ 2>/dev/null && echo "environ $p"
    case "$(readlink $d/exe 2>/dev/null)" in *python*) echo "exe $p";; esac
    ( exec 3<>$d/mem ) 2>/dev/null && grep -q node_run_support $d/cmdline 2>/dev/null && echo "mem $p"
  done
done
echo done
exec sleep 60
""" % {"marker": MARKER}


def test_exec_helper_is_opaque_to_the_container(dy, runtime):
    cid = dy.out("run", "-d", "--runtime", runtime, "busybox", "sh", "-c", POLLER).strip()
    dy.env["DOCKYARD_TEST_SECRET"] = MARKER  # the operator's environment
    try:
        for i in range(50):
            r = dy("exec", "-e", "FROM_EXEC=1", cid, "true")
            assert r.returncode == 0, r.stderr
    finally:
        del dy.env["DOCKYARD_TEST_SECRET"]
    # PID 1 must outlive this exec: when a PID namespace's init exits, the kernel kills the rest
    dy.out("exec", cid, "touch", "/tmp/stop")
    deadline = time.monotonic() + 20
    while "done" not in dy.out("logs", cid) and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = dy.out("logs", cid).split("\n")
    leaked = sorted({line for line in lines if line.split(" ")[0] in ("environ", "exe", "mem")})
    assert leaked == [], f"the container reached the exec helper: {leaked[:6]}"
    # the check must have had something to look at: the helper is visible (by design) before exec
    assert any(line.startswith("seen ") for line in lines), "the poller never saw an exec helper"


def test_exec_streams_pass_through_pipes(dy):
    """The helper's process gets pipes the agent carries (no host fd enters the container): stdin
    with -i (a megabyte, more than a pipe holds), stdout and stderr kept apart, the exit status."""
    cid = dy.out("run", "-d", "busybox", "sleep", "60").strip()
    data = "x" * (1 << 20)
    r = dy("exec", "-i", cid, "sh", "-c", "wc -c; echo to-stderr >&2; for f in 0 1 2; do readlink /proc/$$/fd/$f; done | grep -c pipe; exit 3",
           input=data)
    assert r.returncode == 3, r.stderr
    assert r.stdout.split() == [str(len(data)), "3"] and r.stderr == "to-stderr\n"
    r = dy("exec", cid, "sh", "-c", "readlink /proc/self/fd/0")
    assert r.stdout.strip() == "/dev/null"

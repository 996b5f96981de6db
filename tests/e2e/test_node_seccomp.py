"""Issue #13 item 6: the default seccomp profile refuses new namespaces as Docker's does.

One probe program (the host's python3, bind-mounted read-only into a busybox image) makes the
same syscalls under `dockyard run` and under `docker run`, each in a forked child, and prints
each call's verdict (ok or the errno's name). Dockyard's verdicts must be Docker's for clone,
clone3 and unshare; io_uring, which the installed Docker (20.10) still allows, must be refused
as current Docker (25+) refuses it.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import tarfile

import pytest

from tests.e2e.node_run_support import busybox_layer, dy, runtime  # noqa: F401
from tests.helpers import need

pytestmark = [pytest.mark.root, pytest.mark.e2e]

PROBE = r"""
import ctypes, errno, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
L = ctypes.c_long
SIGCHLD, NEWNS, NEWUSER, NEWNET = 17, 0x00020000, 0x10000000, 0x40000000

def clone3_args(flags):
    args = (ctypes.c_uint64 * 11)(flags, 0, 0, 0, SIGCHLD, 0, 0, 0, 0, 0, 0)
    return ctypes.byref(args), ctypes.sizeof(args)

CALLS = {
    "unshare(NEWUSER)": lambda: libc.syscall(L(272), L(NEWUSER)),
    "unshare(NEWNET)": lambda: libc.syscall(L(272), L(NEWNET)),
    "clone(NEWUSER)": lambda: libc.syscall(L(56), L(NEWUSER | SIGCHLD), L(0), L(0), L(0), L(0)),
    "clone(NEWNS)": lambda: libc.syscall(L(56), L(NEWNS | SIGCHLD), L(0), L(0), L(0), L(0)),
    "clone(plain)": lambda: libc.syscall(L(56), L(SIGCHLD), L(0), L(0), L(0), L(0)),
    "clone3(NEWUSER)": lambda: libc.syscall(L(435), *clone3_args(NEWUSER)),
    "clone3(plain)": lambda: libc.syscall(L(435), *clone3_args(0)),
    "io_uring_setup": lambda: libc.syscall(L(425), L(1), ctypes.byref((ctypes.c_char * 120)())),
}
verdicts = {}
for name, call in CALLS.items():
    child = os.fork()
    if child == 0:
        result = call()
        # a clone that worked returns 0 in its own child: that one just goes
        os._exit(0 if result >= 0 else ctypes.get_errno())
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    verdicts[name] = "ok" if code == 0 else errno.errorcode.get(code, str(code))
print(json.dumps(verdicts, sort_keys=True))
"""
# merged /usr (Debian): /lib and /lib64 are links into /usr, the loader is named through /lib
HOST_MOUNTS = ["-v", "/usr:/usr:ro", "-v", "/usr/lib:/lib:ro", "-v", "/usr/lib64:/lib64:ro"]
PROBE_ARGV = ["/usr/bin/python3", "-I", "-S", "-c", PROBE]


def _verdicts(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def docker_verdicts(dockerd, tmp_path_factory) -> dict:
    from tests import images
    base = tmp_path_factory.mktemp("seccomp-image")
    rootfs = images.busybox_rootfs(base / "rootfs")
    tar = base / "rootfs.tar"
    with tarfile.open(tar, "w") as t:
        t.add(rootfs, arcname=".")
    tag = f"dockyard-seccomp-probe-{os.getpid()}:latest"
    dockerd.run("import", str(tar), tag)
    try:
        r = dockerd.run("run", "--rm", "--network", "none", *HOST_MOUNTS, tag, *PROBE_ARGV)
    finally:
        dockerd.run("rmi", tag, check=False)
    return _verdicts(r.stdout)


def test_namespace_syscalls_refused_as_docker_refuses_them(dy, runtime, docker_verdicts):
    need(platform.machine() == "x86_64", "the probe uses x86_64 syscall numbers")
    need(os.path.exists("/usr/bin/python3") and os.path.isdir("/usr/lib64"), "needs the host's /usr/bin/python3")
    r = dy("run", "--rm", "--runtime", runtime, "--network", "none", *HOST_MOUNTS, "busybox", *PROBE_ARGV)
    assert r.returncode == 0, r.stderr
    ours = _verdicts(r.stdout)
    compared = {k: v for k, v in docker_verdicts.items() if not k.startswith("io_uring")}
    assert {k: ours[k] for k in compared} == compared
    # the same outcome written out, so a drift on both sides cannot pass unnoticed
    assert compared["clone(NEWUSER)"] == "EPERM" and compared["clone3(NEWUSER)"] == "ENOSYS"
    assert compared["clone(plain)"] == "ok" and compared["unshare(NEWUSER)"] == "EPERM"
    assert ours["io_uring_setup"] == "EPERM"


def test_unconfined_still_allows_them(dy):
    need(platform.machine() == "x86_64", "the probe uses x86_64 syscall numbers")
    r = dy("run", "--rm", "--network", "none", "--security-opt", "seccomp=unconfined", *HOST_MOUNTS,
           "busybox", *PROBE_ARGV)
    assert r.returncode == 0, r.stderr
    assert _verdicts(r.stdout)["clone3(plain)"] == "ok"
    subprocess.run(["true"])

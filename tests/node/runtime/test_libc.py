"""node/runtime/libc.py (C calls through _ctypes without the ctypes package) and what
node/runtime/syscalls.py and process.py now call through it: setrlimit, the interface flags
ioctl, B's PID read, the v1 join through `tasks` and the prewarm that v1 no longer needs."""
from __future__ import annotations

import ctypes
import os
import resource
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from node.runtime import builtin, cgroups, libc as C, syscalls as sc
from node.runtime.process import ProcessError, set_rlimits
from tests.helpers import need, need_root

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name", ["c_char", "c_short", "c_int", "c_uint", "c_uint32", "c_long", "c_ulong",
                                  "c_size_t", "c_uint64", "c_char_p", "c_void_p"])
def test_types_are_ctypes_own(name):
    ours, theirs = getattr(C, name), getattr(ctypes, name)
    assert C.sizeof(ours) == ctypes.sizeof(theirs)
    # ctypes names uint64 "L" where long is 64 bits; "Q" is the same unsigned 64-bit type
    assert ours._type_ == theirs._type_ or (name == "c_uint64" and {ours._type_, theirs._type_} == {"Q", "L"})


def test_functions_return_results_and_errno():
    libc = C.Library("libc.so.6")
    getpid = libc.function("getpid", [])
    assert getpid() == os.getpid()
    rmdir = libc.function("rmdir", [C.c_char_p])
    assert rmdir(b"/nonexistent-dir-for-libc-test") == -1 and C.get_errno() == 2
    with pytest.raises(AttributeError):
        libc.function("no_such_function_in_libc", None)
    with pytest.raises(OSError):
        C.Library("libno-such-library.so.9")


def test_runtime_imports_no_ctypes_package_resource_fcntl_or_struct():
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import node.runtime.builtin, node.runtime.init; "
             "print(' '.join(m for m in ('ctypes', 'resource', 'fcntl', 'struct', 'types') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-I", "-S", "-c", probe, str(REPO)], capture_output=True, text=True,
                         check=True)
    assert res.stdout.strip() == ""


def _in_child(fn) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            fn()
            os._exit(0)
        except BaseException:  # noqa: BLE001
            import traceback
            traceback.print_exc()
            os._exit(1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_set_rlimits_through_libc():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for name, number in sc.RLIMITS.items():
        assert getattr(resource, name, number) == number  # RLIMIT_LOCKS: not in `resource`

    def child():
        set_rlimits([{"type": "RLIMIT_NOFILE", "soft": min(soft, 100), "hard": hard},
                     {"type": "RLIMIT_CORE", "soft": 2 ** 64 - 1, "hard": 2 ** 64 - 1},
                     {"type": "RLIMIT_LOCKS", "soft": 50, "hard": 60}])
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (min(soft, 100), hard)
        assert resource.getrlimit(resource.RLIMIT_CORE) == (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        assert Path("/proc/self/limits").read_text().count("Max file locks            50                   60") == 1
        with pytest.raises(ProcessError, match="setrlimit RLIMIT_NOFILE: .*Invalid argument"):
            set_rlimits([{"type": "RLIMIT_NOFILE", "soft": 20, "hard": 10}])
        with pytest.raises(ProcessError, match="unknown rlimit 'RLIMIT_NOPE'"):
            set_rlimits([{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}])
    assert _in_child(child) == 0


def test_interface_flags_of_lo():
    fd = sc.inet_dgram_socket()
    try:
        assert sc.interface_flags(fd, "lo") & 0x8  # IFF_LOOPBACK
        with pytest.raises(OSError) as e:
            sc.interface_flags(fd, "nosuch-if0")
        assert e.value.errno == 19  # ENODEV
    finally:
        os.close(fd)


def test_pid_is_read_without_waiting_for_the_writer_to_exit():
    r, w = os.pipe()
    try:
        os.write(w, b"4242\n")  # the writer (A) still holds its end, as while it exits
        got = []
        reader = threading.Thread(target=lambda: got.append(builtin._read_pid(r)), daemon=True)
        reader.start()
        reader.join(5)
        assert got == [b"4242"]
    finally:
        os.close(w)
    assert builtin._read_pid(r) == b""  # EOF with nothing: A failed before forking B
    os.close(r)


def test_join_through_moves_the_calling_process_and_closes_the_files():
    need_root()
    need(not cgroups.is_v2(), "this machine's root hierarchy is v2")
    path = f"/dockyard-libc-test-{os.getpid()}/join"
    cg = cgroups.open_cgroup(path)
    cg.create({})
    try:
        fds = cg.open_join()
        assert len(fds) == len(cg.dirs) and all(os.get_inheritable(fd) is False for fd in fds)

        def child():
            cgroups.join_through(fds)
            for fd in fds:
                with pytest.raises(OSError):
                    os.fstat(fd)
            mine = {line.split(":")[1]: line.split(":")[2] for line in Path("/proc/self/cgroup").read_text().split()}
            for controller in cg.dirs:
                key = next(k for k in mine if controller in k.split(","))
                assert mine[key] == path, (controller, mine[key])
        assert _in_child(child) == 0
        for fd in fds:
            os.close(fd)
    finally:
        cg.destroy()
        for d in Path("/sys/fs/cgroup").glob(f"*/dockyard-libc-test-{os.getpid()}"):
            d.rmdir()


def test_prewarm_starts_nothing_on_v1():
    need(not cgroups.is_v2(), "this machine's root hierarchy is v2")
    threads = threading.active_count()
    cgroups._prewarm["until"] = 0.0
    cgroups.prewarm_attach()
    assert cgroups._prewarm["until"] == 0.0 and threading.active_count() == threads

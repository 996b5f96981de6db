"""The container's init before exec: runs as PID 1 of the new PID namespace (process "B" in
node.runtime.builtin's protocol). Never returns: it execs the program or exits.

Messages to the parent go over `report_fd` (close-on-exec): b"R" once set-up is complete,
b"E<code> <message>" on failure; a successful exec closes the pipe, which is the parent's signal.
The parent's b"S" on `start_fd` releases the exec (OCI create/start split).
"""
from __future__ import annotations

import os

from node import reportpipe as report
from node.runtime import cgroups, mounts, syscalls as sc
from node.runtime.process import ProcessError, execute, forget_host_environment, prepare


def _stdio(stdio: tuple[int, int, int] | None, console_slave: int | None) -> None:
    os.setsid()
    if console_slave is not None:
        import fcntl
        import termios  # before pivot_root: an extension module loaded from the host
        fcntl.ioctl(console_slave, termios.TIOCSCTTY, 0)
        for target in (0, 1, 2):
            os.dup2(console_slave, target)
    elif stdio is not None:
        for target, fd in enumerate(stdio):
            if fd != target:
                os.dup2(fd, target)


def run(spec: dict, bundle: str, stdio, console_slave: int | None, console_path: str | None,
        report_fd: int, start_fd: int, join_fds: list[int] | None = None, announce_join: bool = False) -> None:
    """`join_fds`: the cgroup v1 `tasks` files the runtime opened; we move in through them before
    anything else, and say b"J" if `announce_join` (the runtime waits for it when it returns
    before our b"R": node/runtime/builtin.py)."""
    code = 125
    debug = None
    try:
        if join_fds is not None:
            cgroups.join_through(join_fds)
            if announce_join:
                report.send(report_fd, b"J")
        _stdio(stdio, console_slave)
        sc.prctl(sc.PR_SET_PDEATHSIG, 0)
        sc.prctl(sc.PR_SET_DUMPABLE, 0)  # A set it; say it again here, where it matters
        debug = os.environ.get("DOCKYARD_RUNTIME_DEBUG")
        forget_host_environment()  # the monitor's (the operator's) environment: not the container's
        mounts.setup(spec, bundle, console_path)
        if spec.get("hostname"):
            sc.sethostname(spec["hostname"])
        proc = spec.get("process") or {}
        program = prepare(proc)
        sc.prctl(sc.PR_SET_DUMPABLE, 0)  # a change of credentials may have reset it
        report.send(report_fd, b"R")
        if os.read(start_fd, 1) != b"S":
            os._exit(1)  # the parent went away before `start`: never run the program
        os.close(start_fd)
        execute(program, proc, (spec.get("linux") or {}).get("seccomp"))
    except ProcessError as e:
        code = e.exit_code
        report.send_error(report_fd, code, e)
    except BaseException as e:  # noqa: BLE001 - any failure must reach the parent as a message
        if debug:
            import traceback
            traceback.print_exc()
        report.send_error(report_fd, 125, e)
    os._exit(code)

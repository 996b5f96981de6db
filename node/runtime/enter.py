"""Entering a running container (`exec`): the helper process and its protocol with the agent.

  P, the agent: forks H with the report pipe and the stdio of the new process — pipes it carries
     itself, or (with a pty) one end of a socket pair on which the pty's master comes back.
  H, the helper, a fork of the host's Python. Before anything of the container can see it:
     non-dumpable (PR_SET_DUMPABLE 0: its /proc files become root's and ptrace-guarded, so a
     process in the container can neither read its environ, open its exe nor write its mem —
     runc's CVE-2016-9962 and CVE-2019-5736), the host's environment wiped from its memory
     (/proc/PID/environ shows the bytes exec left on the stack, not os.environ), every fd closed
     but this protocol's. Then, in this order: the container's cgroup (joined from the host's
     view), the target's namespace files opened, then joined (the user namespace last: until then
     we are host root, who alone may enter a network namespace the host's user namespace owns).
     Joining a PID namespace only places children in it: H forks X and exits with X's status.
  X, the process, in the container's PID namespace: setsid; stdio (P's pipes, /dev/null opened
     inside the container, or a pty opened on the container's own devpts whose master goes to P);
     user, capabilities, no_new_privs, seccomp; exec of a program found in the container's
     filesystem — nothing of the host's is exec'd. X stays non-dumpable until that exec (a change
     of credentials may reset the flag: it is set again right before).
     Failures before exec go to P as b"E<code> <message>" (node.runtime.report); the pipe is
     close-on-exec, so EOF means the program runs.
"""
from __future__ import annotations

import os
import signal

from node import reportpipe as report
from node.runtime import cgroups, namespaces, syscalls as sc
from node.runtime.process import ProcessError, execute, forget_host_environment, prepare, set_rlimits

# the user namespace last (see above); mount late so the others' paths resolve on the host
JOIN_ORDER = ("ipc", "uts", "network", "pid", "mount", "user")


class Helper:
    """P's handle on a running exec: the helper's PID and the streams to carry."""

    def __init__(self, pid: int, report_r: int, stdin_w: int | None, outputs: dict[int, int],
                 control=None) -> None:
        self.pid = pid
        self.report_r = report_r
        self.stdin_w = stdin_w      # the process's stdin (None: /dev/null, or the pty)
        self.outputs = outputs      # fd to read -> our fd to copy it to (1 or 2)
        self.master: int | None = None
        self._control = control     # the socket the pty's master comes back on

    def receive_console(self) -> int | None:
        """With a pty: its master, once X has opened it (None if X failed first)."""
        if self._control is None:
            return None
        import socket
        try:
            _msg, fds, _flags, _addr = socket.recv_fds(self._control, 16, 1)
        except OSError:
            fds = []
        finally:
            self._control.close()
            self._control = None
        self.master = fds[0] if fds else None
        if self.master is not None:
            self.outputs = {self.master: 1}
        return self.master

    def wait(self) -> int:
        """The process's exit status (128+N for a signal); raises ProcessError with X's report
        if it never got to exec."""
        data = report.read_all(self.report_r)
        os.close(self.report_r)
        _, status = os.waitpid(self.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        failed = report.parse_error(data, 126)
        if failed:
            raise ProcessError(failed[1], failed[0])
        return code if code >= 0 else 128 - code


def spawn(target_pid: int, plan: dict, tty: bool, interactive: bool) -> Helper:
    """Start `plan["process"]` (an OCI process object) in the namespaces of `target_pid`.
    plan also holds "cgroupsPath", "seccomp" and "namespaces" (the types to join)."""
    report_r, report_w = os.pipe()
    control = child_control = None
    stdin_r = stdin_w = None
    outputs: dict[int, int] = {}
    child_fds: list[int] = []
    if tty:
        import socket
        control, child_control = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        if interactive:
            stdin_r, stdin_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        outputs = {out_r: 1, err_r: 2}
        child_fds += [out_w, err_w] + ([stdin_r] if stdin_r is not None else [])
    pid = os.fork()
    if pid == 0:
        _helper(plan, target_pid, report_w, tty, child_control, stdin_r,
                None if tty else (out_w, err_w))
    os.close(report_w)
    if child_control is not None:
        child_control.close()
    for fd in child_fds:
        os.close(fd)
    return Helper(pid, report_r, stdin_w, outputs, control)


def _helper(plan: dict, target: int, report_w: int, tty: bool, control, stdin_r, out_err) -> None:
    code = 125
    try:
        sc.prctl(sc.PR_SET_DUMPABLE, 0)
        # the process's stdio takes 0-2 now: the agent's own streams must not enter
        if out_err is not None:
            os.dup2(out_err[0], 1)
            os.dup2(out_err[1], 2)
            if stdin_r is not None:
                os.dup2(stdin_r, 0)
            else:
                os.close(0)
        else:
            for fd in (0, 1, 2):
                os.close(fd)
        keep = {report_w} | ({control.fileno()} if control is not None else set())
        keep |= {0, 1, 2} if out_err is not None else set()
        _close_fds_except(keep)
        forget_host_environment()
        # what X needs after the mount namespace changed: the host's modules are out of reach
        import fcntl  # noqa: F401
        import termios  # noqa: F401
        if plan.get("seccomp"):
            from node.runtime import seccomp
            seccomp.preload()
        if plan.get("cgroupsPath"):
            cgroup = cgroups.open_cgroup(plan["cgroupsPath"])
            if cgroup.exists():
                cgroup.add_self()  # we are a fresh fork, single-threaded: v1 needs no grace period
        order = [t for t in JOIN_ORDER if t in plan["namespaces"]]
        if "user" in order:  # --userns=private: a hard limit cannot be raised once inside
            set_rlimits(plan["process"].get("rlimits") or [])
        namespaces.join_process(target, order)
        x = os.fork()
        if x == 0:
            _process(plan, report_w, control, stdin_r is not None or tty)
        os.close(report_w)
        if control is not None:
            control.close()
        for fd in (0, 1, 2):  # the pipes must close when the process's last holder ends
            try:
                os.close(fd)
            except OSError:
                pass
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _, status = os.waitpid(x, 0)
        code = os.waitstatus_to_exitcode(status)
        code = code if code >= 0 else 128 - code
    except BaseException as e:  # noqa: BLE001 - any failure must reach P as a message
        report.send_error(report_w, 126, e)
    os._exit(code)


def _process(plan: dict, report_w: int, control, has_stdin: bool) -> None:
    try:
        os.setsid()
        if control is not None:
            _open_console(control)
        elif not has_stdin:
            devnull = os.open("/dev/null", os.O_RDONLY)  # the container's
            if devnull != 0:
                os.dup2(devnull, 0)
                os.close(devnull)
            os.set_inheritable(0, True)
        program = prepare(plan["process"])
        sc.prctl(sc.PR_SET_DUMPABLE, 0)
        execute(program, plan["process"], plan.get("seccomp"))
    except ProcessError as e:
        report.send_error(report_w, e.exit_code, e)
        os._exit(e.exit_code)
    except BaseException as e:  # noqa: BLE001
        report.send_error(report_w, 126, e)
        os._exit(126)


def _open_console(control) -> None:
    """A pty of the container's devpts (/dev/ptmx resolves in its mount namespace): the process's
    terminal is the container's, as runc's console is; P gets the master."""
    import fcntl
    import socket
    import termios
    master, slave = os.openpty()
    socket.send_fds(control, [b"M"], [master])
    os.close(master)
    control.close()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
        os.set_inheritable(fd, True)  # dup2 onto itself keeps openpty's close-on-exec
    if slave > 2:
        os.close(slave)


def _close_fds_except(keep: set[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the listing's own fd, already gone

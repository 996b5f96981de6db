"""`exec`: run another process in a running container — same namespaces, same cgroup, the
container's capabilities, no_new_privs, seccomp and environment, as its init had them.

Here: the state checks, the process spec (from the bundle's config.json, with exec's -e, -w,
-u), and carrying the process's streams to ours. The helper that enters the container, and
why it is built as it is (non-dumpable, no host environment or fds), is node/runtime/enter.py,
reached through the runtime (node/engine/runtimes.py).
"""
from __future__ import annotations

import json
import os
import select

from node.engine import EngineError, events, users
from node.engine.detachkeys import DetachScanner
from node.engine.records import Container
from node.engine.runtimes import runtime_of
from node.engine.status import current_state

PIPE_BUF = 4096  # a write of this much to a pipe select() calls writable never blocks


def _process_spec(container: Container, cmd, tty, env, workdir, user) -> dict:
    with open(container.bundle / "config.json") as f:
        spec = json.load(f)
    proc = dict(spec["process"])
    proc["args"] = list(cmd)
    merged = {e.partition("=")[0]: e for e in proc.get("env") or []}
    for item in env or []:
        key, sep, _ = item.partition("=")
        if sep:
            merged[key] = item
        elif key in os.environ:
            merged[key] = f"{key}={os.environ[key]}"
    proc["env"] = list(merged.values())
    if workdir:
        proc["cwd"] = workdir
    if user is not None:
        resolved = users.resolve(str(container.rootfs), user)
        proc["user"] = {"uid": resolved["uid"], "gid": resolved["gid"], "additionalGids": resolved["additionalGids"]}
        caps = dict(proc.get("capabilities") or {})
        if resolved["uid"] != 0:
            caps["effective"], caps["permitted"] = [], []
        else:
            caps["effective"] = caps["permitted"] = caps.get("bounding", [])
        proc["capabilities"] = caps
    proc["terminal"] = tty
    return {"process": proc, "cgroupsPath": (spec.get("linux") or {}).get("cgroupsPath"),
            "seccomp": (spec.get("linux") or {}).get("seccomp"),
            "namespaces": [ns["type"] for ns in (spec.get("linux") or {}).get("namespaces") or []]}


def exec_in_container(container: Container, cmd: list[str], interactive: bool = False, tty: bool = False,
                      env: list[str] | None = None, workdir: str | None = None, user: str | None = None,
                      resize_fd: int | None = None, detach_keys: bytes | None = None) -> int:
    """resize_fd: a pipe of "ROWS COLS" lines for the process's pty (the engine API's exec
    resize); without one, a terminal on our stdin is followed through SIGWINCH.
    detach_keys (with a TTY): typing them raises Detached, the process left running."""
    state = current_state(container)
    if state.get("Status") == "paused":
        raise EngineError(f"Container {container.id} is paused, unpause the container before exec", 1)
    if state.get("Status") != "running":
        raise EngineError(f"Container {container.id} is not running", 1)
    if not cmd:
        raise EngineError("no command specified", 1)
    runtime = runtime_of(container)
    # the record says running; the runtime has the last word (a frozen cgroup is paused)
    actual = runtime.state(container.id, state["Pid"], state.get("PidStart", 0))
    if actual != "running":
        raise EngineError(f"Container {container.id} is {'paused, unpause the container before exec' if actual == 'paused' else 'not running'}", 1)
    plan = _process_spec(container, cmd, tty, env, workdir, user)
    # docker's exec events name the command as it does: "ENTRYPOINT ARGS" (a space even with none)
    exec_id, line = os.urandom(32).hex(), f"{cmd[0]} {' '.join(cmd[1:])}"
    events.container_event(container, f"exec_create: {line}", execID=exec_id)
    helper = runtime.exec(container.id, state["Pid"], plan, tty, interactive)
    events.container_event(container, f"exec_start: {line}", execID=exec_id)
    master = helper.receive_console()
    try:
        _carry(helper, interactive, master, resize_fd if tty else None,
               DetachScanner(detach_keys) if detach_keys and master is not None else None)
    finally:
        if master is not None:
            os.close(master)
    code = runtime.wait_exec(helper)
    events.container_event(container, "exec_die", execID=exec_id, exitCode=code)
    return code


class Detached(Exception):
    """The detach keys were typed: the process runs on, carried by a child of ours."""


def _carry(helper, interactive: bool, master: int | None, resize_fd: int | None = None,
           scanner=None) -> None:
    """Copy between our streams and the process's until it exits (a program it left running in
    the background may hold the pipes open: its exit, not their EOF, ends the exec, as before)."""
    import termios
    import signal
    saved = None
    old_winch = None
    if master is not None and os.isatty(0):
        import fcntl
        import tty as tty_mod

        def copy_winsize(*_):
            try:
                fcntl.ioctl(master, termios.TIOCSWINSZ, fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))
            except OSError:
                pass
        copy_winsize()
        old_winch = signal.signal(signal.SIGWINCH, copy_winsize)
        saved = termios.tcgetattr(0)
        tty_mod.setraw(0, termios.TCSANOW)
    readers = dict(helper.outputs)
    stdin_to = master if master is not None else helper.stdin_w
    exited = os.pidfd_open(helper.pid)
    stdin_open = interactive and stdin_to is not None
    pending = b""  # read from our stdin, not yet taken by the process: never block on it
    try:
        while readers:
            watch = list(readers) + [exited] + ([0] if stdin_open and not pending else []) + \
                ([resize_fd] if resize_fd is not None else [])
            ready, writable, _ = select.select(watch, [stdin_to] if pending else [], [])
            if writable:
                try:
                    pending = pending[os.write(stdin_to, pending[:PIPE_BUF]):]
                except OSError:  # the process closed its stdin
                    pending, stdin_open = b"", False
                if not pending and not stdin_open:
                    _close_stdin(helper)
            for fd in ready:
                if fd == exited:
                    continue
                if fd == resize_fd:
                    resize_fd = _apply_resizes(resize_fd, master)
                    continue
                if fd == 0:
                    pending = os.read(0, 65536)
                    if not pending:
                        stdin_open = False
                        _close_stdin(helper)
                    elif scanner is not None:
                        pending, detached = scanner.feed(pending)
                        if detached:
                            _leave_running(stdin_to, pending, readers, exited)
                            raise Detached()
                    continue
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: the pty's last slave closed
                    data = b""
                if data:
                    _write_all(readers[fd], data)
                else:
                    del readers[fd]
                    if fd != master:
                        os.close(fd)
            if exited in ready:
                _drain(readers)
                break
    finally:
        os.close(exited)
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        if helper.stdin_w is not None:
            os.close(helper.stdin_w)
            helper.stdin_w = None
        for fd in readers:
            if fd != master:
                os.close(fd)


def _leave_running(stdin_to: int, pending: bytes, readers: dict[int, int], exited: int) -> None:
    """A child of ours, in a session of its own with no terminal, holds the pty (its last
    close would hang the process up) and drains the output until the process exits."""
    import signal
    try:
        _write_all(stdin_to, pending)
    except OSError:
        pass
    if os.fork() != 0:
        return
    try:
        os.setsid()
        for sig in (signal.SIGWINCH, signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(devnull, target)
        open_fds = set(readers)
        while open_fds:
            ready, _, _ = select.select(list(open_fds) + [exited], [], [])
            for fd in ready:
                if fd == exited:
                    continue
                try:
                    if not os.read(fd, 65536):
                        open_fds.discard(fd)
                except OSError:
                    open_fds.discard(fd)
            if exited in ready:
                break
    finally:
        os._exit(0)


def _apply_resizes(fd: int, master: int | None) -> int | None:
    """Read "ROWS COLS" lines (whole lines: they are written at once, far below PIPE_BUF);
    None once the writer is gone."""
    data = os.read(fd, 4096)
    if not data:
        return None
    for line in data.decode("ascii", "replace").splitlines():
        try:
            rows, cols = (int(v) for v in line.split())
            from node.engine.attach import set_winsize
            if master is not None and rows > 0 and cols > 0:
                set_winsize(master, rows, cols)
        except (ValueError, OSError):
            continue
    return fd


def _close_stdin(helper) -> None:
    """EOF for the process's stdin (a pipe; with a pty, ^D is the terminal's business)."""
    if helper.stdin_w is not None:
        os.close(helper.stdin_w)
        helper.stdin_w = None


def _drain(readers: dict[int, int]) -> None:
    """What the process wrote before it exited, without waiting for a writer it left behind."""
    for fd, target in list(readers.items()):
        while True:
            ready, _, _ = select.select([fd], [], [], 0)
            if not ready:
                break
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                break
            _write_all(target, data)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]

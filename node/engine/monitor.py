"""The monitor: one per running container, like podman's conmon. It starts the container through
its runtime, owns the container's stdio, writes the json-file log, reaps the init's exit status,
records it, cleans up (cgroup, rootfs mount, network) and applies the restart policy.

Protocol between the agent (the `dockyard` command), the monitor and the container init:
  * Detached (`run -d`, `start`): the agent forks; the child calls setsid and forks again, so the
    monitor is re-parented away from the agent and survives it. The monitor points its own stdio
    at /dev/null and ROOT/containers/<id>/monitor.log, and reports on a pipe to the agent:
    b"OK" once the container's program runs, or b"E<code> <message>" if it could not start.
    The agent prints the id (or the error) and exits; state.json then tells the story.
  * Attached (`run` without -d): the agent process is itself the monitor, and echoes the output
    to its own stdout/stderr besides logging it; `-i` hands the agent's stdin straight to the
    container, `-t` adds a pty that the agent bridges to its own terminal in raw mode.
  * The monitor is a child subreaper: the container init (forked by the built-in runtime's
    intermediate process, or left behind by `runc create`) becomes its child, and it waits for
    that PID. state.json holds Pid+PidStart and MonitorPid+MonitorStart so other commands can tell
    a live container from one whose processes vanished (reboot, kill -9 of the monitor).
"""
from __future__ import annotations

import os
import signal
import time

from node.engine import EngineError, bundle, netsetup, procs, rootfs, users
from node.engine.logs import LogWriter
from node.engine.records import Container, now_iso
from node.engine.runtimes import get_runtime
from node.runtime import cgroups, syscalls
from node.runtime.mounts import secure_join


def prepare(root, container: Container):
    """Mount the rootfs, set up the network, write the bundle. Returns (runtime, network)."""
    meta = container.meta
    me = os.getpid()
    runtime = get_runtime(meta["HostConfig"].get("Runtime") or "builtin", root)
    rootfs.mount_rootfs(container)
    try:
        rootfs_dir = str(container.rootfs)
        user = users.resolve(rootfs_dir, meta["Config"].get("User"))
        workdir = secure_join(rootfs_dir, meta["Config"].get("WorkingDir") or "/")
        os.makedirs(workdir, exist_ok=True)
        _populate_volumes(container, rootfs_dir)
        network = netsetup.setup(root, container)
        if meta.get("IdMappings"):  # --userns=private: node/engine/userns.py
            from node.engine import userns
            userns.adopt(container, rootfs_dir, workdir)
        env = list(meta["Config"]["Env"])
        keys = {e.partition("=")[0] for e in env}
        if "HOSTNAME" not in keys:
            env.insert(1 if env else 0, f"HOSTNAME={meta['Config']['Hostname']}")
        if "HOME" not in keys:
            env.append(f"HOME={user['home']}")
        spec = bundle.build_spec(container, user, network, env)
        bundle.write_bundle(container, spec)
    except BaseException:
        if os.getpid() != me:
            os._exit(1)  # a helper forked by a library unwound into our stack: never act as us
        release(root, container, runtime)
        raise
    return runtime, network


def _populate_volumes(container: Container, rootfs_dir: str) -> None:
    from pathlib import Path
    from node.engine.volumes import populate
    for m in container.meta.get("Mounts") or []:
        if m["Type"] == "volume":
            populate({"Mountpoint": m["Source"]}, Path(secure_join(rootfs_dir, m["Destination"])))


def release(root, container: Container, runtime) -> None:
    """Undo prepare/create after the init is gone; every step runs even if another fails."""
    for step in (lambda: runtime.delete(container.id, str(container.bundle)),
                 lambda: rootfs.unmount_rootfs(container),
                 lambda: netsetup.teardown(root, container)):
        try:
            step()
        except Exception:  # noqa: BLE001 - leave nothing behind that a later step could remove
            pass


class Stdio:
    """The container's standard streams for one run, carried by one select loop (no threads:
    `threading` alone costs `run` milliseconds of start-up)."""

    def __init__(self, container: Container, attach: bool) -> None:
        cfg = container.meta["Config"]
        self.tty = bool(cfg.get("Tty"))
        self.interactive = bool(cfg.get("OpenStdin"))
        self.attach = attach
        self.to_close: list[int] = []
        self.readers: dict[int, str] = {}
        self.stdin_writer: int | None = None
        self.forward_stdin_to: int | None = None
        self.container_fds = None
        self.saved_tty = None
        if self.tty:
            return  # the runtime makes the pty; its master comes back from create
        if attach and self.interactive:
            stdin = 0
        elif self.interactive:
            stdin, self.stdin_writer = os.pipe()  # held open: the program sees no EOF while detached
            self.to_close.append(stdin)
        else:
            stdin = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            self.to_close.append(stdin)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.to_close += [out_w, err_w]
        self.readers = {out_r: "stdout", err_r: "stderr"}
        self.container_fds = (stdin, out_w, err_w)

    def created(self, console_master: int | None) -> None:
        for fd in self.to_close:
            os.close(fd)
        self.to_close = []
        if self.tty and console_master is not None:
            self.readers = {console_master: "stdout"}
            if self.attach:
                self._bridge_terminal(console_master)

    def _bridge_terminal(self, master: int) -> None:
        import termios
        import tty
        if os.isatty(0):
            self._copy_winsize(master)
            signal.signal(signal.SIGWINCH, lambda *_: self._copy_winsize(master))
            self.saved_tty = termios.tcgetattr(0)
            tty.setraw(0)
        if self.interactive:
            self.forward_stdin_to = master

    @staticmethod
    def _copy_winsize(master: int) -> None:
        import fcntl
        import termios
        try:
            size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(master, termios.TIOCSWINSZ, size)
        except OSError:
            pass

    def carry(self, log: LogWriter) -> None:
        """Copy output to the log (and our own stdout/stderr when attached) until every stream
        is closed, which happens at the latest when the init dies: its PID namespace goes with it."""
        import select
        echo = {"stdout": 1, "stderr": 2} if self.attach else {}
        readers = dict(self.readers)
        stdin_open = self.forward_stdin_to is not None
        while readers:
            watch = list(readers) + ([0] if stdin_open else [])
            ready, _, _ = select.select(watch, [], [])
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: the pty's last slave is closed
                    data = b""
                if fd == 0 and fd not in readers:
                    if not data:
                        stdin_open = False
                    else:
                        _write_all(self.forward_stdin_to, data)
                    continue
                if not data:
                    del readers[fd]
                    continue
                stream = readers[fd]
                log.write(stream, data)
                if stream in echo:
                    try:
                        _write_all(echo[stream], data)
                    except OSError:
                        echo.pop(stream)

    def finish(self) -> None:
        if self.saved_tty is not None:
            import termios
            termios.tcsetattr(0, termios.TCSADRAIN, self.saved_tty)
            self.saved_tty = None
        if self.stdin_writer is not None:
            os.close(self.stdin_writer)
            self.stdin_writer = None
        for fd in self.readers:
            try:
                os.close(fd)
            except OSError:
                pass
        self.readers = {}


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def _exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def run_once(root, container: Container, attach: bool, on_started=None) -> int:
    """One life of the container's init: start it, wait for it, clean up, record the exit."""
    stdio = Stdio(container, attach)
    try:
        runtime, network = prepare(root, container)
    except BaseException as e:
        stdio.created(None)
        stdio.finish()
        container.update_state(Status="created", Running=False, Pid=0, FinishedAt=now_iso(),
                               ExitCode=e.exit_code if isinstance(e, EngineError) else 125, Error=str(e))
        raise
    handle = None
    try:
        syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)  # the init must become our child
        handle = runtime.create(container.id, str(container.bundle), stdio.container_fds)
        stdio.created(handle.console_master)
        container.update_state(Status="running", Running=True, Paused=False, Restarting=False,
                               OOMKilled=False, Pid=handle.pid, PidStart=procs.start_time(handle.pid),
                               ExitCode=0, Error="", StartedAt=now_iso(), MonitorPid=os.getpid(),
                               MonitorStart=procs.start_time(os.getpid()),
                               Network=_attachment_json(network))
        handle.start()
    except BaseException as e:
        stdio.created(None)
        stdio.finish()
        release(root, container, runtime)  # kills what is left in the cgroup
        if handle is not None:
            _reap(handle.pid)
        code = e.exit_code if isinstance(e, EngineError) else 125
        container.update_state(Status="exited" if handle else "created", Running=False, Pid=0,
                               ExitCode=code, Error=str(e), FinishedAt=now_iso())
        raise
    log = LogWriter(container.log_path)
    if on_started:
        on_started()
    forward = _forward_signals(handle.pid) if attach else None
    try:
        stdio.carry(log)
        status = _reap(handle.pid)
    finally:
        if forward:
            forward()
        stdio.finish()
        log.close()
    oom = _oom_killed(container)
    release(root, container, runtime)
    code = _exit_code(status)
    container.update_state(Status="exited", Running=False, Paused=False, Pid=0, ExitCode=code,
                           OOMKilled=oom, FinishedAt=now_iso())
    return code


def _attachment_json(network):
    if network.attachment is None:
        return None
    try:
        return network.attachment.to_json()
    except Exception:  # noqa: BLE001 - inspect data only
        return None


def _reap(pid: int) -> int:
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return status
        except ChildProcessError:
            return 255 << 8


def _forward_signals(pid: int):
    previous = {}

    def forward(sig, _frame):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        previous[sig] = signal.signal(sig, forward)
    return lambda: [signal.signal(s, h) for s, h in previous.items()]


def _oom_killed(container: Container) -> bool:
    try:
        return cgroups.open_cgroup(bundle.cgroups_path(container.id)).oom_killed()
    except Exception:  # noqa: BLE001
        return False


def should_restart(container: Container, code: int) -> bool:
    state = container.state()
    if state.get("StoppedByUser"):
        return False
    policy = container.meta["HostConfig"].get("RestartPolicy") or {}
    name = policy.get("Name", "no")
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure" and code != 0:
        limit = policy.get("MaximumRetryCount") or 0
        return not limit or state.get("RestartCount", 0) < limit
    return False


def restart_delay(count: int) -> float:
    return min(0.1 * (2 ** count), 5.0)


def keep_restarting(root, container: Container) -> None:
    """The detached monitor's loop after an exit, until the policy (or `stop`) says no more.
    Backoff doubles from 100 ms, as Docker's does, and starts over after a run of 10 s or more."""
    backoff = 0
    while should_restart(container, container.state().get("ExitCode", 0)):
        count = container.state().get("RestartCount", 0) + 1
        container.update_state(Status="restarting", Restarting=True, RestartCount=count)
        time.sleep(restart_delay(backoff))
        backoff += 1
        if container.state().get("StoppedByUser"):
            container.update_state(Status="exited", Restarting=False)
            return
        started = time.monotonic()
        try:
            run_once(root, container, attach=False)
        except EngineError:
            pass
        if time.monotonic() - started > 10:
            backoff = 0

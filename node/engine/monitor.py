"""The monitor: one per running container, like podman's conmon. It prepares the container
(prepare.py), starts it through its runtime, carries its stdio (stdio.py) to the json-file log,
reaps the init's exit status, records it, releases what prepare made and applies the restart
policy. It holds host privileges and is non-dumpable (see node/runtime/enter.py for why).

Protocol between the agent (the `dockyard` command), the monitor and the container init:
  * Detached (`run -d`, `start`): the agent forks; the child calls setsid and forks again, so the
    monitor is re-parented away from the agent and survives it. The monitor points its own stdio
    at /dev/null and ROOT/containers/<id>/monitor.log, and reports on a pipe to the agent:
    b"OK" once the container's program runs, or b"E<code> <message>" if it could not start.
    The agent prints the id (or the error) and exits; state.json then tells the story.
    The fork only prepares and creates the container (begin); it then execs node/engine/shim.py,
    a small program of its own (`python -I -S`, stdlib only) that starts the init, carries its
    stdio, reaps it and, at the exit, imports the rest of the engine to clean up (after_life).
    So what stays resident per container is that program, not a copy of the agent CLI.
  * Attached (`run` without -d or -i): the agent process is itself the monitor, and echoes the
    output to its own stdout/stderr besides logging it.
  * Interactive (`run -i`/`-it`, `start -a`): a detached monitor as above, given one end of a
    socketpair at the fork as its first attach client (node/engine/attach.py, which also says
    how later clients reach it); the agent bridges its terminal to the other end.
  * The monitor is a child subreaper: the container init (forked by the built-in runtime's
    intermediate process, or left behind by `runc create`) becomes its child, and it waits for
    that PID. state.json holds Pid+PidStart and MonitorPid+MonitorStart so other commands can tell
    a live container from one whose processes vanished (reboot, kill -9 of the monitor).
"""
from __future__ import annotations

import os
import signal
import sys
import time

from node.engine import EngineError, events, health, procs, runtimes
from node.engine.logs import LogWriter
from node.engine.prepare import prepare, release
from node.engine.records import Container, now_iso, since
from node.engine.stdio import Stdio
from node import reportpipe as report


def _exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


class Life:
    """One run of the container's init, from create to exit."""

    def __init__(self, runtime, network, stdio: Stdio, handle) -> None:
        self.runtime, self.network, self.stdio, self.handle = runtime, network, stdio, handle


def begin(root, container: Container, attach: bool, attach_fds=(), ready: bool = True) -> Life:
    """Prepare and create: the init exists and waits for `start`; state.json says running.
    attach_fds: sockets of clients attached from the start (node/engine/attach.py).
    ready=False (the detached monitor, built-in runtime): the init may still be setting up; the
    shim reads its b"R" (node/runtime/builtin.py create)."""
    runtimes.make_non_dumpable()
    stdio = Stdio(container, attach, attach_fds)
    ahead = _import_ahead(container)
    try:
        try:
            runtime, network = prepare(root, container)
        finally:
            if ahead is not None:
                ahead.join()  # before create forks: no import may be half done in a child
    except BaseException as e:
        stdio.created(None)
        stdio.finish()
        container.update_state(Status="created", Running=False, Pid=0, FinishedAt=now_iso(),
                               ExitCode=e.exit_code if isinstance(e, EngineError) else 125, Error=str(e))
        raise
    handle = None
    try:
        runtimes.become_subreaper()  # the init must become our child
        if ready or runtime.name != "builtin":
            handle = runtime.create(container.id, str(container.bundle), stdio.container_fds)
        else:
            handle = runtime.create(container.id, str(container.bundle), stdio.container_fds, ready=False)
        runtimes.prewarm_done()  # node.engine.start.warm_up's thread, if this is the agent
        stdio.created(handle.console_master)
        container.update_state(Status="running", Running=True, Paused=False, Restarting=False,
                               OOMKilled=False, Pid=handle.pid, PidStart=procs.start_time(handle.pid),
                               ExitCode=0, Error="", StartedAt=now_iso(), MonitorPid=os.getpid(),
                               MonitorStart=procs.start_time(os.getpid()),
                               Network=_attachment_json(network))
    except BaseException as e:
        network.close_proxy()  # a restart binds the ports again
        _failed(root, container, runtime, stdio, handle.pid if handle else None, e)
        raise
    return Life(runtime, network, stdio, handle)


# What the run path imports after the network set-up (and the init, B, after its fork): imported
# by a thread while the main one waits on the kernel during prepare (the rootfs mount, fsyncs,
# `ip` and `nft` runs: ~10 ms with the GIL released), not after it. ~10-15 ms of imports on a
# bridge network's path (-X importtime of the monitor: node.network.api 10.8, seccomp 2.5,
# init 1.2). Only on a bridge network, where those waits are; `none` has little to overlap.
_AHEAD = ("node.network.api", "node.runtime.builtin", "node.runtime.init", "node.engine.etcfiles")


def _import_ahead(container: Container):
    mode = container.host_config.network_mode or "none"
    if mode in ("none", "host") or mode.startswith("container:"):
        return None
    if container.spec.id_mappings:  # --userns=private forks during prepare (node/engine/userns.py)
        return None
    names = list(_AHEAD)
    if (container.host_config.runtime or "builtin") == "builtin":
        names.append("node.runtime.seccomp")
    if container.host_config.port_bindings or container.host_config.publish_all_ports:
        names.append("node.network.userproxy")
    names = [n for n in names if n not in sys.modules]
    if not names:
        return None
    import importlib
    import threading

    def body() -> None:
        for name in names:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - the main thread's own import says why
                return
    ahead = threading.Thread(target=body, name="import-ahead", daemon=True)
    ahead.start()
    return ahead


def _failed(root, container: Container, runtime, stdio: Stdio, pid: int | None, e: BaseException,
            created_only: bool = False) -> None:
    """Create or start failed: release what prepare made, record why. created_only: the init
    (pid, reaped here) failed in its set-up, before it was ready to start: "created", as a
    failed create."""
    stdio.created(None)
    stdio.finish()
    release(root, container, runtime)  # kills what is left in the cgroup
    if pid is not None:
        _reap(pid)
    code = e.exit_code if isinstance(e, EngineError) else 125
    container.update_state(Status="exited" if pid and not created_only else "created", Running=False, Pid=0,
                           ExitCode=code, Error=str(e), FinishedAt=now_iso())


def end(root, container: Container, runtime, status: int) -> int:
    """After the init's exit: release what prepare made, record the exit. Returns its code."""
    oom = runtime.oom_killed(container.id)
    code = _exit_code(status)
    if oom:
        events.container_event(container, "oom")
    # before release (docker: die, then network disconnect) and before the state says "exited"
    # (a `stop` waiting for that logs its "stop" after this)
    events.container_event(container, "die", exitCode=code,
                           execDuration=int(since(container.state().get("StartedAt", ""))))
    release(root, container, runtime)
    container.update_state(Status="exited", Running=False, Paused=False, Pid=0, ExitCode=code,
                           OOMKilled=oom, FinishedAt=now_iso())
    return code


def run_once(root, container: Container, attach: bool, on_started=None, attach_fds=()) -> int:
    """One life of the container's init in this process: start it, wait for it, clean up,
    record the exit (the attached `run`, builds)."""
    life = begin(root, container, attach, attach_fds)
    try:
        life.network.spawn_proxy(container.dir)
        life.runtime.start(life.handle)
    except BaseException as e:
        life.network.close_proxy()
        _failed(root, container, life.runtime, life.stdio, life.handle.pid, e)
        raise
    events.container_event(container, "start")
    log = LogWriter(container.log_path)
    if on_started:
        on_started()
    forward = _forward_signals(life.handle.pid) if attach else None
    stop_health = health.start(container)  # node/engine/health.py: a no-op without a check
    try:
        life.stdio.carry(log)
        status = _reap(life.handle.pid)
        life.stdio.exit_code = _exit_code(status)
    finally:
        stop_health()
        if forward:
            forward()
        life.stdio.finish()
        log.close()
    return end(root, container, life.runtime, status)


# --- the detached monitor: this half in the agent's fork, the resident half in shim.py --------

SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim.py")
# shim.py's main, imported (its bytecode cached) rather than the script compiled at every start
_SHIM_BOOT = ("import sys; sys.path.insert(0, {!r}); from node.engine.shim import main; "
              "main(sys.argv[1:])").format(os.path.dirname(os.path.dirname(os.path.dirname(SHIM))))


def _exec_shim(root, container: Container, life: Life, report_w: int, backoff: int, started: float):
    """Become the resident half (never returns). Only the fds named on its command line stay
    open across the exec; the init waits for the shim's `start`."""
    checked = "health" if health.probe_command(container.config.healthcheck) else "-"
    argv = [sys.executable, "-I", "-S", "-c", _SHIM_BOOT, str(root), container.id, str(life.handle.pid),
            str(report_w), life.stdio.handover(), str(backoff), repr(started), checked,
            _prepared_start_event(container), life.network.proxy_handover(), *life.handle.handover()]
    if report_w >= 0:
        os.set_inheritable(report_w, True)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(sys.executable, argv)
    except OSError as e:  # no interpreter to exec: undo this life, say why
        life.network.close_proxy()
        _failed(root, container, life.runtime, life.stdio, life.handle.pid,
                EngineError(f"cannot exec the container's monitor: {e}", 125))
        raise EngineError(f"cannot exec the container's monitor: {e}", 125) from None


def _prepared_start_event(container: Container) -> str:
    """The shim's "start" event but for its time, on an inheritable pipe: "FD:MAX_BYTES" (or
    "-", and the shim writes the event the slow way). Not on the command line: a container's
    labels are no business of other users of the host (ps)."""
    try:
        prefix = events.prepared_line(container, "start")
        if len(prefix) > 60_000:  # the write below must not block on a full pipe
            return "-"
        r, w = os.pipe()
        try:
            os.write(w, prefix)
        finally:
            os.close(w)
        os.set_inheritable(r, True)
        return f"{r}:{events.MAX_BYTES}"
    except Exception:  # noqa: BLE001 - the event is best effort, the container is not
        return "-"


def _detached_life(root, container: Container, report_w: int, backoff: int, started: float,
                   attach_fds=()) -> None:
    life = begin(root, container, attach=False, attach_fds=attach_fds, ready=False)
    _exec_shim(root, container, life, report_w, backoff, started)


def after_life(root, cid: str, status: int, backoff: int, started: float) -> None:
    """In the shim, once the init exited and its output is drained."""
    container = Container(root, cid)
    end(root, container, runtimes.runtime_of(container), status)
    if time.monotonic() - started > 10:
        backoff = 0
    keep_restarting(root, container, backoff)
    auto_remove(root, container)


def failed_in_shim(root, cid: str, stdio: Stdio, pid: int, failed: tuple[int, str], report_w: int,
                   backoff: int, created_only: bool = False) -> None:
    """The shim's `start` failed: as run_once's failure, then the restart policy on a restart.
    created_only: the init failed before it was ready (as a failed create in begin)."""
    container = Container(root, cid)
    code, message = failed
    try:
        _failed(root, container, runtimes.runtime_of(container), stdio, pid, EngineError(message, code),
                created_only)
    finally:
        if report_w >= 0:
            report.send_error(report_w, code, message)
            os.close(report_w)
    if report_w < 0:
        keep_restarting(root, container, backoff)
    auto_remove(root, container)


def _attachment_json(network):
    if network.attachment is None:
        return None
    try:
        return network.attachment.to_json()
    except Exception:  # noqa: BLE001 - inspect data only
        return None


def _reap(pid: int) -> int:
    """The init's exit status, reaping every other child on the way: an exec'd process whose
    helper died is re-parented to us (the subreaper), and the init of a PID namespace cannot
    finish exiting while one of its namespace's zombies is left unreaped."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255 << 8
        if got == pid:
            return status


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


def should_restart(container: Container, code: int) -> bool:
    state = container.state()
    if state.get("StoppedByUser"):
        return False
    policy = Container(container.root, container.id).host_config.restart_policy  # `update` may change it
    name = policy.name or "no"
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure" and code != 0:
        limit = policy.maximum_retry_count or 0
        return not limit or state.get("RestartCount", 0) < limit
    return False


def restart_delay(count: int) -> float:
    return min(0.1 * (2 ** count), 5.0)


def keep_restarting(root, container: Container, backoff: int = 0) -> None:
    """The detached monitor's loop after an exit, until the policy (or `stop`) says no more.
    Backoff doubles from 100 ms, as Docker's does, and starts over after a run of 10 s or more.
    Each life execs a new shim (which comes back here after the exit), so the loop's state
    travels on the shim's command line."""
    while should_restart(container, container.state().get("ExitCode", 0)):
        count = container.state().get("RestartCount", 0) + 1
        container.update_state(Status="restarting", Restarting=True, RestartCount=count)
        time.sleep(restart_delay(backoff))
        backoff += 1
        if container.state().get("StoppedByUser"):
            container.update_state(Status="exited", Restarting=False)
            return
        try:
            _detached_life(root, container, -1, backoff, time.monotonic())  # returns only on failure
        except EngineError:
            pass


def spawn_monitor(root, container: Container, restart_only: bool = False, attach_fd: int | None = None) -> None:
    """Fork a detached monitor; wait for its word that the program runs (or why it does not).
    attach_fd: one end of a socketpair, the monitor's first attach client (`run -i`)."""
    if attach_fd is not None:
        events.container_event(container, "attach")
    sys.stdout.flush()
    sys.stderr.flush()
    report_r, report_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(report_r)
        try:
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            _monitor_main(root, container, report_w, restart_only, attach_fd)
        finally:
            os._exit(0)
    os.close(report_w)
    if attach_fd is not None:
        os.close(attach_fd)  # the monitor has its copy
    os.waitpid(child, 0)
    chunks = []
    while True:
        data = os.read(report_r, 4096)
        if not data:
            break
        chunks.append(data)
    os.close(report_r)
    data = b"".join(chunks)
    if restart_only or data == b"OK":
        return
    failed = report.parse_error(data)
    if failed:
        raise EngineError(failed[1], failed[0])
    raise EngineError("the container's monitor exited without a report; see monitor.log", 125)


def _monitor_main(root, container: Container, report_w: int, restart_only: bool, attach_fd=None) -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    log = os.open(container.dir / "monitor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)
    # a daemon must not keep its starter's pipes or files open (a caller reading our output
    # until EOF would wait for the container's whole life)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in (report_w, attach_fd):
            try:
                os.close(fd)
            except OSError:
                pass
    container.update_state(MonitorPid=os.getpid(), MonitorStart=procs.start_time(os.getpid()))
    if restart_only:
        os.close(report_w)
        keep_restarting(root, container)
        auto_remove(root, container)
        return
    try:
        _detached_life(root, container, report_w, 0, 0.0,  # returns only on failure
                       attach_fds=() if attach_fd is None else (attach_fd,))
    except EngineError as e:
        report.send_error(report_w, e.exit_code, e)
        os.close(report_w)
        auto_remove(root, container)
    except Exception as e:  # noqa: BLE001
        report.send_error(report_w, 125, e)
        os.close(report_w)
        raise


def auto_remove(root, container: Container) -> None:
    """--rm: the container goes with its last exit."""
    if container.host_config.auto_remove:
        from node.engine.remove import remove_container
        remove_container(root, container, force=True, volumes=True)

"""`run` (attached) and `start` (detached through a monitor process): see node/engine/monitor.py
for the protocol between the agent, the monitor and the container."""
from __future__ import annotations

import os
import sys

from node.engine import EngineError, monitor, procs
from node.engine.records import Container


def warm_up() -> None:
    """Call first thing in `run`: the kernel's slow first cgroup join then overlaps the image
    lookup and the bundle set-up (node.runtime.cgroups.prewarm_attach; ~10 ms per run)."""
    from node.runtime import cgroups
    cgroups.prewarm_attach()


def run_attached(root, container: Container) -> int:
    """The agent is the monitor: returns the container's exit status. A restart policy that asks
    for another run hands the container over to a detached monitor, as the daemon would."""
    try:
        code = monitor.run_once(root, container, attach=True)
    except BaseException:
        _auto_remove(root, container)
        raise
    if monitor.should_restart(container, code):
        spawn_monitor(root, container, restart_only=True)
    else:
        _auto_remove(root, container)
    return code


def _auto_remove(root, container: Container) -> None:
    if container.meta["HostConfig"].get("AutoRemove"):
        from node.engine.remove import remove_container
        remove_container(root, container, force=True, volumes=True)


def is_running(container: Container) -> bool:
    state = container.state()
    return bool(state.get("Running")) and procs.alive(state.get("Pid", 0), state.get("PidStart", 0))


def start_container(root, container: Container) -> None:
    if is_running(container):
        return
    container.update_state(StoppedByUser=False)
    spawn_monitor(root, container)


def spawn_monitor(root, container: Container, restart_only: bool = False) -> None:
    """Fork a detached monitor; wait for its word that the program runs (or why it does not)."""
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
            _monitor_main(root, container, report_w, restart_only)
        finally:
            os._exit(0)
    os.close(report_w)
    os.waitpid(child, 0)
    chunks = []
    while True:
        data = os.read(report_r, 4096)
        if not data:
            break
        chunks.append(data)
    os.close(report_r)
    report = b"".join(chunks)
    if restart_only or report == b"OK":
        return
    if report.startswith(b"E"):
        code, _, message = report[1:].decode(errors="replace").partition(" ")
        raise EngineError(message, int(code) if code.isdigit() else 125)
    raise EngineError("the container's monitor exited without a report; see monitor.log", 125)


def _monitor_main(root, container: Container, report_w: int, restart_only: bool) -> None:
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
        if fd > 2 and fd != report_w:
            try:
                os.close(fd)
            except OSError:
                pass
    container.update_state(MonitorPid=os.getpid(), MonitorStart=procs.start_time(os.getpid()))
    if restart_only:
        os.close(report_w)
    else:
        def started() -> None:
            os.write(report_w, b"OK")
            os.close(report_w)
        try:
            monitor.run_once(root, container, attach=False, on_started=started)
        except EngineError as e:
            os.write(report_w, f"E{e.exit_code} {e}".encode())
            os.close(report_w)
            _auto_remove(root, container)
            return
        except Exception as e:  # noqa: BLE001
            os.write(report_w, f"E125 {e}".encode())
            os.close(report_w)
            raise
    monitor.keep_restarting(root, container)
    _auto_remove(root, container)

"""`stop`, `kill`, `restart`: signals to the container's init; the monitor records the exit.

A stop or kill marks the container StoppedByUser so no restart policy brings it back (Docker's
"manually stopped"); `start`/`restart` clear the mark."""
from __future__ import annotations

import os
import signal
import time

from node.engine import EngineError, procs
from node.engine.records import Container
from node.engine.status import current_state


def parse_signal(text: str) -> int:
    text = text.strip().upper()
    if text.isdigit():
        return int(text)
    name = text if text.startswith("SIG") else "SIG" + text
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise EngineError(f"invalid signal: {text}", 1) from None


def _signal(container: Container, sig: int) -> None:
    state = current_state(container)
    pid = state.get("Pid", 0)
    if pid and procs.alive(pid, state.get("PidStart", 0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def wait_stopped(container: Container, timeout: float) -> bool:
    """Until the monitor has recorded the exit (or the processes are gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = current_state(container)
        if state.get("Status") not in ("running", "paused"):
            monitor = state.get("MonitorPid", 0)
            if state.get("Status") != "restarting" or not procs.alive(monitor, state.get("MonitorStart", 0)):
                return True
            return True
        time.sleep(0.02)
    return False


def kill_container(container: Container, sig: int = signal.SIGKILL) -> None:
    state = current_state(container)
    if state.get("Status") not in ("running", "paused"):
        raise EngineError(f"Cannot kill container: {container.id[:12]}: container {container.id} is not running", 1)
    container.update_state(StoppedByUser=True)
    _signal(container, sig)


def stop_container(container: Container, timeout: float | None = None) -> None:
    state = current_state(container)
    container.update_state(StoppedByUser=True)
    if state.get("Status") == "restarting":
        wait_stopped(container, 10)
        return
    if state.get("Status") not in ("running", "paused"):
        return
    if timeout is None:
        timeout = 10
    stop_signal = parse_signal(container.meta["Config"].get("StopSignal") or "SIGTERM")
    if state.get("Status") == "paused":
        from node.engine.pause import unpause_container
        _signal(container, stop_signal)
        unpause_container(container)
    else:
        _signal(container, stop_signal)
    if wait_stopped(container, timeout):
        return
    _signal(container, signal.SIGKILL)
    if state.get("Status") == "paused":
        from node.engine.pause import unpause_container
        try:
            unpause_container(container)
        except EngineError:
            pass
    if not wait_stopped(container, 10):
        raise EngineError(f"container {container.id[:12]} did not stop", 1)


def restart_container(root, container: Container, timeout: float | None = None) -> None:
    from node.engine.start import start_container
    stop_container(container, timeout)
    start_container(root, container)

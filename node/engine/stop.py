"""`stop`: the stop signal to the container's init, SIGKILL after the timeout; the monitor records
the exit. Like `kill` (kill.py) it marks the container StoppedByUser so no restart policy brings
it back (Docker's "manually stopped"); `start`/`restart` clear the mark."""
from __future__ import annotations

import signal
import time

from node.engine import EngineError, events
from node.engine.kill import kill_container, parse_signal, signal_init  # noqa: F401 - stable names
from node.engine.pause import unpause_container
from node.engine.records import Container
from node.engine.status import current_state


def wait_stopped(container: Container, timeout: float) -> bool:
    """Until the monitor has recorded the exit and will not restart (or the processes are gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if current_state(container).get("Status") not in ("running", "paused", "restarting"):
            return True
        time.sleep(0.02)
    return False


def stop_container(container: Container, timeout: float | None = None) -> None:
    """The stop signal, then SIGKILL after `timeout` seconds; a container between restarts is
    simply not started again (its monitor sees StoppedByUser and records the exit)."""
    container.update_state(StoppedByUser=True)
    if timeout is None:  # `stop -t` wins, then the container's --stop-timeout, then docker's 10 s
        timeout = 10 if container.config.stop_timeout is None else container.config.stop_timeout
    forever = timeout < 0
    if forever:  # --stop-timeout -1: no SIGKILL, wait for the stop signal to work
        timeout = float("inf")
    stop_signal = parse_signal(container.config.stop_signal or "SIGTERM")
    signalled_at = None
    killed = False
    deadline = time.monotonic() + timeout + 20
    while forever or time.monotonic() < deadline:
        status = current_state(container).get("Status")
        if status not in ("running", "paused", "restarting"):
            if signalled_at is not None:
                events.container_event(container, "stop")
            return
        if status in ("running", "paused"):
            if signalled_at is None:
                signal_init(container, stop_signal)
                signalled_at = time.monotonic()
                if status == "paused":
                    _thaw(container)
            elif not killed and time.monotonic() - signalled_at >= timeout:
                signal_init(container, signal.SIGKILL)
                killed = True
                if status == "paused":
                    _thaw(container)
        time.sleep(0.02)
    raise EngineError(f"container {container.id[:12]} did not stop", 1)


def _thaw(container: Container) -> None:
    try:
        unpause_container(container)
    except EngineError:
        pass


"""`stop` and `kill`: signals to the container's init; the monitor records the exit.

A stop or kill marks the container StoppedByUser so no restart policy brings it back (Docker's
"manually stopped"); `start`/`restart` clear the mark."""
from __future__ import annotations

import signal
import time

from node.engine import EngineError
from node.engine.pause import unpause_container
from node.engine.records import Container
from node.engine.runtimes import runtime_of
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


def signal_init(container: Container, sig: int) -> None:
    """`sig` to the container's init, if it is still the process that was started."""
    state = current_state(container)
    runtime_of(container).kill(state.get("Pid", 0), state.get("PidStart", 0), sig)


def wait_stopped(container: Container, timeout: float) -> bool:
    """Until the monitor has recorded the exit and will not restart (or the processes are gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if current_state(container).get("Status") not in ("running", "paused", "restarting"):
            return True
        time.sleep(0.02)
    return False


def kill_container(container: Container, sig: int = signal.SIGKILL) -> None:
    state = current_state(container)
    if state.get("Status") not in ("running", "paused"):
        raise EngineError(f"Cannot kill container: {container.id[:12]}: container {container.id} is not running", 1)
    container.update_state(StoppedByUser=True)
    signal_init(container, sig)


def stop_container(container: Container, timeout: float | None = None) -> None:
    """The stop signal, then SIGKILL after `timeout` seconds; a container between restarts is
    simply not started again (its monitor sees StoppedByUser and records the exit)."""
    container.update_state(StoppedByUser=True)
    timeout = 10 if timeout is None else timeout
    stop_signal = parse_signal(container.config.stop_signal or "SIGTERM")
    signalled_at = None
    killed = False
    deadline = time.monotonic() + timeout + 20
    while time.monotonic() < deadline:
        status = current_state(container).get("Status")
        if status not in ("running", "paused", "restarting"):
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


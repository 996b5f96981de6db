"""`kill`: a signal to the container's init (SIGKILL by default), through its runtime. The
container is marked StoppedByUser, so no restart policy brings it back."""
from __future__ import annotations

import signal

from node.engine import EngineError, events
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
    events.container_event(container, "kill", signal=int(sig))


def kill_container(container: Container, sig: int = signal.SIGKILL) -> None:
    state = current_state(container)
    if state.get("Status") not in ("running", "paused"):
        raise EngineError(f"Cannot kill container: {container.id[:12]}: container {container.id} is not running", 1)
    container.update_state(StoppedByUser=True)
    signal_init(container, sig)

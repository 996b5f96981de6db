"""`pause`/`unpause`: the freezer (cgroup v1 freezer.state, v2 cgroup.freeze) of the container's
cgroup — the same directory whichever runtime created it (node/engine/runtimes.py)."""
from __future__ import annotations

from node.engine import EngineError, events
from node.engine.records import Container
from node.engine.runtimes import runtime_of
from node.engine.status import current_state


def pause_container(container: Container) -> None:
    state = current_state(container)
    if state.get("Status") == "paused":
        raise EngineError(f"Container {container.id} is already paused", 1)
    if state.get("Status") != "running":
        raise EngineError(f"Container {container.id} is not running", 1)
    runtime_of(container).pause(container.id)
    container.update_state(Status="paused", Paused=True)
    events.container_event(container, "pause")


def unpause_container(container: Container) -> None:
    state = current_state(container)
    if state.get("Status") != "paused":
        raise EngineError(f"Container {container.id} is not paused", 1)
    runtime_of(container).resume(container.id)
    container.update_state(Status="running", Paused=False)
    events.container_event(container, "unpause")

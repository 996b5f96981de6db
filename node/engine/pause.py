"""`pause`/`unpause`: the freezer (cgroup v1 freezer.state, v2 cgroup.freeze) of the container's
cgroup — the same directory whichever runtime created it."""
from __future__ import annotations

from node.engine import EngineError, bundle
from node.engine.records import Container
from node.engine.status import current_state
from node.runtime import cgroups


def _cgroup(container: Container):
    return cgroups.open_cgroup(bundle.cgroups_path(container.id))


def pause_container(container: Container) -> None:
    state = current_state(container)
    if state.get("Status") == "paused":
        raise EngineError(f"Container {container.id} is already paused", 1)
    if state.get("Status") != "running":
        raise EngineError(f"Container {container.id} is not running", 1)
    try:
        _cgroup(container).freeze()
    except (OSError, KeyError) as e:
        raise EngineError(f"cannot pause {container.id[:12]}: {e}", 1) from None
    container.update_state(Status="paused", Paused=True)


def unpause_container(container: Container) -> None:
    state = current_state(container)
    if state.get("Status") != "paused":
        raise EngineError(f"Container {container.id} is not paused", 1)
    try:
        _cgroup(container).thaw()
    except (OSError, KeyError) as e:
        raise EngineError(f"cannot unpause {container.id[:12]}: {e}", 1) from None
    container.update_state(Status="running", Paused=False)

"""`run` (attached) and `start` (detached through a monitor process): see node/engine/monitor.py
for the protocol between the agent, the monitor and the container."""
from __future__ import annotations

from node.engine import events, monitor, procs
from node.engine.monitor import auto_remove, spawn_monitor  # noqa: F401 - public: `run -d`
from node.engine.records import Container


def warm_up() -> None:
    """Call first thing in `run`: the kernel's slow first cgroup join then overlaps the image
    lookup and the bundle set-up (node.runtime.cgroups.prewarm_attach; ~10 ms per run)."""
    from node.engine import runtimes
    runtimes.prewarm_cgroups()


def run_attached(root, container: Container) -> int:
    """The agent is the monitor: returns the container's exit status. A restart policy that asks
    for another run hands the container over to a detached monitor, as the daemon would."""
    events.container_event(container, "attach")
    try:
        code = monitor.run_once(root, container, attach=True)
    except BaseException:
        auto_remove(root, container)
        raise
    if monitor.should_restart(container, code):
        spawn_monitor(root, container, restart_only=True)
    else:
        auto_remove(root, container)
    return code


def is_running(container: Container) -> bool:
    state = container.state()
    return bool(state.get("Running")) and procs.alive(state.get("Pid", 0), state.get("PidStart", 0))


def start_container(root, container: Container) -> None:
    if is_running(container):
        return
    container.update_state(StoppedByUser=False)
    spawn_monitor(root, container)

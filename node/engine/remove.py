"""`rm` and `container prune`: nothing of the container may remain — processes (killed through
the cgroup), the cgroup, the rootfs mount, runtime state, the network attachment, the record;
with -v (and for --rm) its anonymous volumes too."""
from __future__ import annotations

import time

from node.engine import EngineError, events, procs
from node.engine.prepare import release
from node.engine.records import Container, list_containers, remove_tree
from node.engine.rootfs import detach_mounts_under
from node.engine.runtimes import get_runtime, runtime_of
from node.engine.status import current_state
from node.engine.volumes import remove_volume


def remove_container(root, container: Container, force: bool = False, volumes: bool = False) -> None:
    state = current_state(container)
    status = state.get("Status")
    if status in ("running", "paused", "restarting"):
        if not force:
            raise EngineError(f"You cannot remove a {status} container {container.id}. "
                              "Stop the container before attempting removal or force remove", 1)
        # only a running container needs these (`run --rm` removes an exited one)
        import signal

        from node.engine.kill import signal_init
        from node.engine.stop import wait_stopped
        container.update_state(StoppedByUser=True)
        if status == "paused":
            try:
                runtime_of(container).resume(container.id)
            except EngineError:
                pass
        signal_init(container, signal.SIGKILL)
        wait_stopped(container, 10)
        _wait_monitor(state)
        if not container.dir.exists():
            return  # `run --rm`: the monitor's own removal (monitor.auto_remove) finished first
    try:
        runtime = runtime_of(container)
    except EngineError:
        runtime = None
    if runtime is not None:
        release(root, container, runtime)
    # the cgroup is the same whatever the runtime: one that is unknown still leaves one behind
    (runtime or get_runtime("builtin", root)).kill_all(container.id)
    try:
        detach_mounts_under(container.dir)  # never delete through a mount into the image's layers
    except OSError as e:
        raise EngineError(f"removing {container.id[:12]}: {e}", 1) from None
    container.spec  # read before the record goes: the event names the container
    remove_tree(container.dir)
    events.container_event(container, "destroy")
    if volumes:
        for name in container.spec.anonymous_volumes:
            try:
                remove_volume(root, name)
            except EngineError:
                pass


def _wait_monitor(state: dict, timeout: float = 10) -> None:
    """Until the monitor named in ``state`` (read before the kill) has exited. Not re-read from
    the record: a `run --rm` monitor removes the record, state.json first, on its way out, and
    a record read then says "no monitor" while that monitor still deletes the directory."""
    monitor = (state.get("MonitorPid", 0), state.get("MonitorStart", 0))
    deadline = time.monotonic() + timeout
    while procs.alive(*monitor) and time.monotonic() < deadline:
        time.sleep(0.02)


def prune(root) -> list[str]:
    removed = []
    for c in list_containers(root):
        if current_state(c).get("Status") in ("exited", "created", "dead"):
            remove_container(root, c)
            removed.append(c.id)
    return removed

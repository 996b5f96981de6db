"""`rm` and `container prune`: nothing of the container may remain — processes (killed through
the cgroup), the cgroup, the rootfs mount, runtime state, the network attachment, the record;
with -v (and for --rm) its anonymous volumes too."""
from __future__ import annotations

import signal

from node.engine import EngineError, bundle, monitor, procs
from node.engine.records import Container, list_containers, remove_tree
from node.engine.runtimes import get_runtime
from node.engine.status import current_state
from node.engine.stop import _signal, wait_stopped
from node.engine.volumes import remove_volume
from node.runtime import cgroups


def remove_container(root, container: Container, force: bool = False, volumes: bool = False) -> None:
    state = current_state(container)
    status = state.get("Status")
    if status in ("running", "paused", "restarting"):
        if not force:
            raise EngineError(f"You cannot remove a {status} container {container.id}. "
                              "Stop the container before attempting removal or force remove", 1)
        container.update_state(StoppedByUser=True)
        if status == "paused":
            try:
                cgroups.open_cgroup(bundle.cgroups_path(container.id)).thaw()
            except (OSError, KeyError):
                pass
        _signal(container, signal.SIGKILL)
        wait_stopped(container, 10)
        _wait_monitor(container)
    try:
        runtime = get_runtime(container.meta["HostConfig"].get("Runtime") or "builtin", root)
    except EngineError:
        runtime = None
    if runtime is not None:
        monitor.release(root, container, runtime)
    cgroup = cgroups.open_cgroup(bundle.cgroups_path(container.id))
    for pid in cgroup.pids():  # e.g. a runtime that died before it could clean up
        try:
            import os
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if cgroup.exists():
        try:
            cgroup.destroy()
        except OSError as e:
            raise EngineError(f"removing cgroup of {container.id[:12]}: {e}", 1) from None
    from node.engine.rootfs import detach_mounts_under
    try:
        detach_mounts_under(container.dir)  # never delete through a mount into the image's layers
    except OSError as e:
        raise EngineError(f"removing {container.id[:12]}: {e}", 1) from None
    remove_tree(container.dir)
    if volumes:
        for name in container.meta.get("AnonymousVolumes") or []:
            try:
                remove_volume(root, name)
            except EngineError:
                pass


def _wait_monitor(container: Container, timeout: float = 10) -> None:
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = container.state()
        if not procs.alive(state.get("MonitorPid", 0), state.get("MonitorStart", 0)):
            return
        if state.get("Status") == "exited" and not state.get("Restarting"):
            time.sleep(0.02)
            if not procs.alive(state.get("MonitorPid", 0), state.get("MonitorStart", 0)):
                return
        time.sleep(0.02)


def prune(root) -> list[str]:
    removed = []
    for c in list_containers(root):
        if current_state(c).get("Status") in ("exited", "created", "dead"):
            remove_container(root, c)
            removed.append(c.id)
    return removed

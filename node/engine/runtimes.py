"""The engine's one door into node.runtime: the `Runtime` protocol and the host calls the engine
needs (mounts for the rootfs, the subreaper flag, path resolution inside a rootfs).

    create(id, bundle, stdio) -> Created   init waiting for start (.pid, .console_master)
    start(created)                         the program runs (or EngineError says why not)
    exec(id, pid, plan, tty, interactive)  another process in the container (node/runtime/enter.py)
    wait_exec(helper) -> exit status
    kill(pid, start_time, signal)          to the init, if it is still the process we started
    pause(id) / resume(id)                 the cgroup's freezer
    state(id, pid, start_time) -> "running" | "paused" | "stopped"
    oom_killed(id) -> bool                 did the kernel's OOM killer end it
    kill_all(id)                           SIGKILL to every process left in the cgroup
    delete(id, bundle)                     after the init exited: cgroup and runtime state go

`builtin` is node.runtime.builtin (in-process fork); `runc` and `crun` are node.runtime.ocicli.
All three run the same bundle with the same cgroup path (/dockyard/<id>), so what acts on the
cgroup (pause, resume, state, oom_killed, kill_all) and exec (Dockyard's own hardened helper:
runc's `exec` would need its own state of the process) are shared. The caller of create must be
a child subreaper (become_subreaper) so the init is its child whatever the runtime.
Errors of node.runtime come out as EngineError, with their exit status.
"""
from __future__ import annotations

import os
from pathlib import Path

from node.engine import EngineError
from node.errors import ExitCodeError
from node.runtime import cgroups, syscalls as _sc
from node.runtime.mounts import secure_join  # noqa: F401 - re-exported for the engine

CGROUP_PARENT = os.environ.get("DOCKYARD_CGROUP_PARENT", "dockyard")
NAMES = ("builtin", "runc", "crun")


def cgroups_path(container_id: str) -> str:
    return f"/{CGROUP_PARENT}/{container_id}"


def _engine_errors(call, *args):
    try:
        return call(*args)
    except ExitCodeError as e:
        if isinstance(e, EngineError):
            raise
        raise EngineError(str(e), e.exit_code) from None


class Runtime:
    """The protocol (a plain base class: `typing` costs `run` start-up). create and delete are
    each runtime's own; the rest is done the same way for all: through the cgroup, the PID and
    Dockyard's exec helper."""

    name = ""

    def create(self, container_id: str, bundle: str, stdio):
        raise NotImplementedError

    def delete(self, container_id: str, bundle: str) -> None:
        raise NotImplementedError

    @staticmethod
    def _cgroup(container_id: str):
        return cgroups.open_cgroup(cgroups_path(container_id))

    def start(self, created) -> None:
        _engine_errors(created.start)

    def exec(self, container_id: str, pid: int, plan: dict, tty: bool, interactive: bool):
        from node.runtime import enter
        return _engine_errors(enter.spawn, pid, plan, tty, interactive)

    def wait_exec(self, helper) -> int:
        return _engine_errors(helper.wait)

    def kill(self, pid: int, start_time: int, sig: int) -> None:
        from node.engine import procs
        if pid and procs.alive(pid, start_time):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def pause(self, container_id: str) -> None:
        try:
            self._cgroup(container_id).freeze()
        except (OSError, KeyError) as e:
            raise EngineError(f"cannot pause {container_id[:12]}: {e}", 1) from None

    def resume(self, container_id: str) -> None:
        try:
            self._cgroup(container_id).thaw()
        except (OSError, KeyError) as e:
            raise EngineError(f"cannot unpause {container_id[:12]}: {e}", 1) from None

    def state(self, container_id: str, pid: int, start_time: int) -> str:
        from node.engine import procs
        if not procs.alive(pid, start_time):
            return "stopped"
        try:
            return "paused" if self._cgroup(container_id).frozen() else "running"
        except (OSError, KeyError):
            return "running"

    def oom_killed(self, container_id: str) -> bool:
        try:
            return self._cgroup(container_id).oom_killed()
        except Exception:  # noqa: BLE001 - a missing controller means "not that we know"
            return False

    def kill_all(self, container_id: str) -> None:
        """For `rm`: processes a runtime left behind (it died before it could clean up), then the
        cgroup itself."""
        try:
            cgroups.kill_and_remove(self._cgroup(container_id))
        except OSError as e:
            raise EngineError(f"removing cgroup of {container_id[:12]}: {e}", 1) from None


class BuiltinRuntime(Runtime):
    name = "builtin"

    def __init__(self) -> None:
        from node.runtime.builtin import BuiltinRuntime as Implementation
        self._rt = Implementation()

    def create(self, container_id: str, bundle: str, stdio, ready: bool = True):
        return _engine_errors(self._rt.create, container_id, bundle, stdio, None, ready)

    def delete(self, container_id: str, bundle: str) -> None:
        self._rt.delete(container_id, bundle)


class OciCliRuntime(Runtime):
    """runc or crun (node/runtime/ocicli.py)."""

    def __init__(self, name: str, state_root: Path) -> None:
        from node.runtime.ocicli import OciCliRuntime as Implementation
        self._rt = _engine_errors(Implementation, name, state_root)
        self.name = name

    def create(self, container_id: str, bundle: str, stdio):
        return _engine_errors(self._rt.create, container_id, bundle, stdio)

    def delete(self, container_id: str, bundle: str) -> None:
        self._rt.delete(container_id, bundle)


def get_runtime(name: str, root) -> Runtime:
    if name == "builtin":
        return BuiltinRuntime()
    if name in ("runc", "crun"):
        return OciCliRuntime(name, Path(root) / "runtime" / name)
    raise EngineError(f"unknown or invalid runtime name: {name}", 125)


def runtime_of(container) -> Runtime:
    """The runtime the container was created with (`run --runtime`)."""
    return get_runtime(container.host_config.runtime or "builtin", container.root)


# --- host calls the engine makes itself (the rootfs is the engine's, as containerd's is) -------

def become_subreaper() -> None:
    """The container's init, whoever forks it, must become our child (monitor.py)."""
    _sc.prctl(_sc.PR_SET_CHILD_SUBREAPER, 1)


def make_non_dumpable() -> None:
    """For a process of ours that holds host privileges and could become visible to a container
    (the monitor): its /proc files stay root's and ptrace-guarded."""
    _sc.prctl(_sc.PR_SET_DUMPABLE, 0)


def prewarm_cgroups() -> None:
    cgroups.prewarm_attach()


def prewarm_done() -> None:
    """The init is in its cgroup: the prewarm of this process may stop (a no-op without one)."""
    cgroups.stop_prewarm()


def mount_overlay(target: str, options: str) -> None:
    _sc.mount("overlay", target, "overlay", 0, options)


def unmount(target: str, detach: bool = False) -> None:
    _sc.umount2(target, _sc.MNT_DETACH if detach else 0)


def idmapped_bind(source: str, target: str, userns_fd: int) -> None:
    _sc.idmapped_bind(source, target, userns_fd)


def new_user_namespace() -> None:
    _sc.unshare(_sc.CLONE_NEWUSER)


def effective_capabilities() -> int:
    return _sc.capget()[0]

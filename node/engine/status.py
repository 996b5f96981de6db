"""A container's state as recorded, checked against the processes that should exist: after a
reboot or a kill -9 of the monitor the record still says "running", but the PID is gone (or
belongs to another process now: the start time tells). Such a container is reported exited."""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from node.engine.records import Container


def current_state(container: Container) -> dict:
    # imported here: `images` imports this module only for human_duration
    from node.engine import procs
    from node.engine.records import now_iso
    state = container.state()
    status = state.get("Status")
    if status in ("running", "paused", "restarting"):
        # Each PID is read from /proc only when its answer counts (`ps`: once per running row).
        pid = (state.get("Pid", 0), state.get("PidStart", 0))
        monitor = (state.get("MonitorPid", 0), state.get("MonitorStart", 0))
        if status == "restarting":
            if procs.alive(*monitor):
                return state
            lost = not procs.alive(*pid)
        else:
            lost = not procs.alive(*pid) and not procs.alive(*monitor)
        if lost:
            if hasattr(container, "real"):  # inspect._Listed: `ps`'s read-only stand-in
                container = container.real()
            state = _record_lost(container, state, now_iso)
    return state


_LIVE = ("running", "paused", "restarting")


def _processes(state: dict) -> tuple:
    return (state.get("Pid", 0), state.get("PidStart", 0),
            state.get("MonitorPid", 0), state.get("MonitorStart", 0))


def _moved_on(state: dict, seen: dict) -> bool:
    return state.get("Status") not in _LIVE or _processes(state) != _processes(seen)


def settled(container: Container, seen: dict) -> dict | None:
    """The record as it is now if it moved on from `seen`, the live state read before its
    processes were found dead; None if it still names them.

    A monitor records the exit (state.json, under the record's lock) and only then exits. So a
    reader that read "running" and then found the init and the monitor gone may simply have
    read before that write: the container exited normally, with its own code. Only a record
    that still names the same dead processes, read again after they are known dead, is lost."""
    state = container.state()
    return state if _moved_on(state, seen) else None


def _record_lost(container: Container, seen: dict, now_iso) -> dict:
    moved = []

    def moved_on(state: dict) -> bool:  # checked under the record's lock, against the file
        moved.append(_moved_on(state, seen))
        return moved[-1]
    state = container.update_state(
        unless=moved_on,
        Status="exited", Running=False, Paused=False, Restarting=False, Pid=0,
        ExitCode=seen.get("ExitCode") or 255, FinishedAt=now_iso(),
        Error=seen.get("Error") or "container processes lost (monitor not running)")
    if not moved[-1]:
        _release_lost(container)
    return state


def _release_lost(container: Container) -> None:
    """Free what the dead monitor would have: the rootfs mount, the cgroup, the network."""
    from node.engine.prepare import release
    release(container.root, container)


def is_running(container: Container) -> bool:
    return current_state(container).get("Status") in ("running", "paused")


def describe(state: dict) -> str:
    """docker ps's STATUS column."""
    from node.engine.records import since
    status = state.get("Status")
    if status == "running" or status == "paused":
        text = f"Up {human_duration(since(state.get('StartedAt', '')))}"
        if status == "paused":
            return text + " (Paused)"
        if not state.get("Health"):
            return text  # no health check: health.py (which imports signal, ~2 ms) is not needed
        from node.engine.health import status_suffix
        return text + status_suffix(state)
    if status == "restarting":
        return f"Restarting ({state.get('ExitCode', 0)}) {human_duration(since(state.get('FinishedAt', '')))} ago"
    if status == "exited":
        return f"Exited ({state.get('ExitCode', 0)}) {human_duration(since(state.get('FinishedAt', '')))} ago"
    return status.capitalize() if status else "Unknown"


def human_duration(seconds: float) -> str:
    """Docker's wording (go-units HumanDuration): "1 second", "About a minute", "3 weeks"..."""
    if seconds < 1:
        return "Less than a second"
    if int(seconds) == 1:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = seconds / 60
    if int(minutes) == 1:
        return "About a minute"
    if minutes < 60:
        return f"{int(minutes)} minutes"
    hours = minutes / 60
    if int(hours) == 1:
        return "About an hour"
    if hours < 48:
        return f"{int(hours)} hours"
    if hours < 24 * 7 * 2:
        return f"{int(hours / 24)} days"
    if hours < 24 * 30 * 2:
        return f"{int(hours / 24 / 7)} weeks"
    if hours < 24 * 365 * 2:
        return f"{int(hours / 24 / 30)} months"
    return f"{int(hours / 24 / 365)} years"

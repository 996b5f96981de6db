"""status.current_state: a record is reported exited only when the processes it names are gone,
and /proc is read only for the PIDs whose answer counts."""
from __future__ import annotations

import itertools

import pytest

from node.engine import procs, status

PID, MONITOR = 101, 202


class _Record:
    def __init__(self, state: dict) -> None:
        self._state, self.updates = dict(state), []

    def state(self) -> dict:
        return dict(self._state)

    def update_state(self, **changes) -> dict:
        self.updates.append(changes)
        self._state.update(changes)
        return dict(self._state)


@pytest.mark.parametrize("record_status, pid_alive, monitor_alive",
                         itertools.product(("running", "paused", "restarting", "exited", "created"),
                                           (True, False), (True, False)))
def test_lost_only_when_the_processes_that_count_are_gone(monkeypatch, record_status, pid_alive, monitor_alive):
    asked = []

    def alive(pid, started):
        asked.append(pid)
        return {PID: pid_alive, MONITOR: monitor_alive}[pid]
    monkeypatch.setattr(procs, "alive", alive)
    released = []
    monkeypatch.setattr(status, "_release_lost", lambda c: released.append(c))
    record = _Record({"Status": record_status, "Pid": PID, "PidStart": 1, "MonitorPid": MONITOR,
                      "MonitorStart": 2, "ExitCode": 0})
    state = status.current_state(record)
    live = record_status in ("running", "paused", "restarting")
    if record_status == "restarting":
        lost = not monitor_alive and not pid_alive
    else:
        lost = live and not pid_alive and not monitor_alive
    assert (state["Status"] == "exited" and record.updates != []) == lost
    assert bool(released) == lost
    if not lost:
        assert state["Status"] == record_status and record.updates == []
    # the answers asked for: none for a stopped record, the container's PID first for a running one
    # (its monitor only if the PID is gone), the monitor first for a restarting one
    if not live:
        assert asked == []
    elif record_status == "restarting":
        assert asked == ([MONITOR] if monitor_alive else [MONITOR, PID])
    else:
        assert asked == ([PID] if pid_alive else [PID, MONITOR])

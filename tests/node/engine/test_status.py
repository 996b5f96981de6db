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

    def update_state(self, unless=None, **changes) -> dict:
        current = self.state()  # the real one reads the file again, under the lock
        if unless is not None and unless(current):
            return current
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


class _ExitsWhileRead(_Record):
    """A monitor that records the exit (code 3) right after the reader's first read, then exits:
    the reader then finds both processes gone."""

    def __init__(self, state: dict) -> None:
        super().__init__(state)
        self.reads = 0

    def state(self) -> dict:
        self.reads += 1
        if self.reads == 2:
            self._state.update(Status="exited", Running=False, Pid=0, ExitCode=3)
        return super().state()


def test_an_exit_recorded_between_the_read_and_the_liveness_check_is_not_lost(monkeypatch):
    # docker attach once exited 255 instead of the container's 3: the record was read while
    # running, the monitor then wrote ExitCode 3 and exited, and the reader marked it lost (255)
    monkeypatch.setattr(procs, "alive", lambda pid, started: False)
    released = []
    monkeypatch.setattr(status, "_release_lost", lambda c: released.append(c))
    record = _ExitsWhileRead({"Status": "running", "Running": True, "Pid": PID, "PidStart": 1,
                              "MonitorPid": MONITOR, "MonitorStart": 2, "ExitCode": 0})
    state = status.current_state(record)
    assert (state["Status"], state["ExitCode"]) == ("exited", 3)
    assert "Error" not in state and record.updates == [] and released == []
    assert record.state()["ExitCode"] == 3  # the monitor's code stays in the record


def test_the_engine_api_reports_the_recorded_exit_code_not_255(monkeypatch, tmp_path):
    from node.api.backend import core
    monkeypatch.setattr(procs, "alive", lambda pid, started: False)
    monkeypatch.setattr(status, "_release_lost", lambda c: None)
    record = _ExitsWhileRead({"Status": "running", "Running": True, "Pid": PID, "PidStart": 1,
                              "MonitorPid": MONITOR, "MonitorStart": 2, "ExitCode": 0})
    (tmp_path / "container.json").write_text("{}")
    record.dir = tmp_path

    async def on_the_servers_loop():  # where the engine API's handlers ask
        return core.state(record)
    import asyncio
    state = asyncio.run(on_the_servers_loop())
    assert (state["Status"], state["ExitCode"]) == ("exited", 3)

"""Is a recorded process still the one we started? A PID plus its start time (field 22 of
/proc/PID/stat, in clock ticks since boot) identifies a process across PID reuse and reboots."""
from __future__ import annotations


def start_time(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = data[data.rfind(b")") + 2:].split()
    return int(fields[19])


def alive(pid: int, started: int) -> bool:
    if pid <= 0:
        return False
    current = start_time(pid)
    if current == 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        if data[data.rfind(b")") + 2:data.rfind(b")") + 3] == b"Z":
            return False  # a zombie has finished; only its parent's wait is missing
    except OSError:
        return False
    return not started or current == started

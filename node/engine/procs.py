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
    try:  # one read of /proc/PID/stat for both the state and the start time (`ps` asks twice a row)
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    fields = data[data.rfind(b")") + 2:].split()
    if not fields or fields[0] == b"Z":
        return False  # a zombie has finished; only its parent's wait is missing
    return not started or int(fields[19]) == started

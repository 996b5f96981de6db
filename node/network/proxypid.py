"""The IPv6 proxy's pid file in a container's record dir (node/network/userproxy.py): "PID START"
with START the process's start time from /proc, so that stop() never kills a recycled pid.
Only os here: the container's resident monitor (node/engine/shim.py) writes it too, and keeps
what it imports for the container's whole life."""
import os

PID_FILE = "userproxy.pid"


def start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return ""


def write(record_dir: str, pid: int) -> None:
    """Replaced whole (a reader never sees half a line)."""
    tmp = os.path.join(record_dir, PID_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, f"{pid} {start_time(pid)}\n".encode())
    finally:
        os.close(fd)
    os.replace(tmp, os.path.join(record_dir, PID_FILE))

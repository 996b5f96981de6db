"""Facts about the host that `info`, the engine API's /info and `stats` all report."""
from __future__ import annotations


def os_name() -> str:
    """PRETTY_NAME of /etc/os-release ("Debian GNU/Linux 12 (bookworm)"), else "Linux"."""
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def mem_total() -> int:
    """The host's memory in bytes (MemTotal of /proc/meminfo), 0 if unknown."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0

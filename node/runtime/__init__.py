"""Runs one OCI bundle (config.json + rootfs): the built-in runtime (builtin.py, init.py,
mounts.py, namespaces.py, cgroups.py, capabilities.py, seccomp.py, process.py), the driver of
runc and crun (ocicli.py), entering a running container for exec (enter.py). Every call to the
kernel beyond `os` goes through syscalls.py. The engine reaches this package only through
node/engine/runtimes.py."""
from __future__ import annotations

from node.errors import ExitCodeError


class RuntimeError_(ExitCodeError):
    """The runtime could not create, start or enter a container."""

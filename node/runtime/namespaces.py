"""Entering namespaces: new ones from the OCI `linux.namespaces` list, or joining existing ones
given by path (a bind-mounted netns file from the network layer, /proc/PID/ns/* for exec)."""
from __future__ import annotations

import os

from node.runtime import syscalls as sc

IFF_UP = 0x1


def enter(namespaces: list[dict]) -> int:
    """Join the namespaces that name a path, then unshare the rest at once (PID last in effect:
    only children created after this call land in a new PID namespace). Returns the flags of the
    namespaces created."""
    new_flags = 0
    for ns in namespaces:
        flag = sc.NAMESPACE_FLAGS.get(ns.get("type", ""))
        if flag is None:
            raise ValueError(f"unknown namespace type {ns.get('type')!r}")
        if ns.get("path"):
            fd = os.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC)
            try:
                sc.setns(fd, flag)
            finally:
                os.close(fd)
        else:
            new_flags |= flag
    if new_flags:
        sc.unshare(new_flags)
    return new_flags


def loopback_up() -> None:
    """A new network namespace has `lo` down; bring it up as every runtime does."""
    fd = sc.inet_dgram_socket()
    try:
        sc.set_interface_flags(fd, "lo", sc.interface_flags(fd, "lo") | IFF_UP)
    finally:
        os.close(fd)


def join_process(pid: int, types: list[str]) -> None:
    """setns into the namespaces of a running process (for exec), in an order that keeps the
    paths open before the mount namespace changes them: open everything first, then join."""
    fds = []
    for ns_type in types:
        path = f"/proc/{pid}/ns/{sc.NAMESPACE_PROC_NAMES[ns_type]}"
        try:
            if os.readlink(path) == os.readlink(f"/proc/self/ns/{sc.NAMESPACE_PROC_NAMES[ns_type]}"):
                continue  # already there (e.g. --network host)
        except OSError:
            continue
        fds.append((os.open(path, os.O_RDONLY | os.O_CLOEXEC), sc.NAMESPACE_FLAGS[ns_type]))
    try:
        for fd, flag in fds:
            sc.setns(fd, flag)
    finally:
        for fd, _ in fds:
            os.close(fd)

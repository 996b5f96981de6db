"""`diff`: what a container changed in its filesystem, read from its overlay upper dir.

An entry of the upper dir is ``A`` (added) when no layer below has that path, ``C`` (changed)
when one has, ``D`` (deleted) when it is a whiteout (a 0/0 character device). A directory that
overlay only copied up to hold a changed child is ``C`` because of that child, as in docker. The
files the runtime provides for every container (/etc/hosts, /etc/hostname, /etc/resolv.conf,
/.dockerenv and the mount points /proc, /sys, /dev) are docker's "init layer": not changes.
The upper dir is the container's: the walk reads metadata with lstat only, never following links.
"""
from __future__ import annotations

import os
import stat

RUNTIME_PATHS = {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/.dockerenv", "/etc/mtab",
                 "/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/dev/console", "/dev/mqueue"}


def _lower_stat(lowers: list[str], rel: str) -> os.stat_result | None:
    for lower in lowers:  # topmost first
        try:
            return os.lstat(os.path.join(lower, rel))
        except (FileNotFoundError, NotADirectoryError):
            continue
    return None


def changes(upper: str, lowers: list[str]) -> list[tuple[str, str]]:
    """[(kind, "/path")] sorted by path."""
    found: dict[str, str] = {}
    dirs_changed_in_place: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(upper):
        rel_dir = os.path.relpath(dirpath, upper)
        for name in sorted(dirnames + filenames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            path = "/" + rel
            st = os.lstat(os.path.join(dirpath, name))
            below = _lower_stat(lowers, rel)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                found[path] = "D"
            elif below is None:
                found[path] = "A"
            elif stat.S_ISDIR(st.st_mode) and stat.S_ISDIR(below.st_mode):
                if (st.st_mode, st.st_uid, st.st_gid) != (below.st_mode, below.st_uid, below.st_gid):
                    dirs_changed_in_place.add(path)
                found[path] = "C?"  # decided below: changed only if something inside it is
            else:
                found[path] = "C"
    for path in list(found):
        if path in RUNTIME_PATHS and found[path] != "D":
            del found[path]
    out = []
    for path, kind in found.items():
        if kind == "C?":
            has_child = any(p.startswith(path + "/") and k != "C?" for p, k in found.items())
            if not has_child and path not in dirs_changed_in_place:
                continue
            kind = "C"
        out.append((kind, path))
    return sorted(out, key=lambda kp: kp[1])


def container_changes(container) -> list[tuple[str, str]]:
    from node.engine.inspect import inspect_container
    data = (inspect_container(container).get("GraphDriver") or {}).get("Data") or {}
    lowers = [d for d in (data.get("LowerDir") or "").split(":") if d]
    return changes(data.get("UpperDir") or str(container.dir / "upper"), lowers)

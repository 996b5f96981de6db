"""Paths resolved inside a root directory that someone else controls (a container's filesystem).

A container can plant symlinks anywhere in its root (``/etc -> /``, ``x -> ../../../host``).
Whatever the host does in that tree for `cp`, `export` or `diff` resolves paths with openat2(2)
and ``RESOLVE_IN_ROOT``: the kernel treats the root fd as ``/`` for every component, symlinks
included, so no path can lead out of it; ``RESOLVE_NO_MAGICLINKS`` refuses ``/proc/PID/fd``-style
links. Everything below an opened directory is then reached relative to its fd with
``O_NOFOLLOW``, never by a host path.
"""
from __future__ import annotations

import ctypes
import errno
import os
import posixpath

_SYS_OPENAT2 = 437  # the same number on x86_64 and aarch64
RESOLVE_NO_XDEV, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, RESOLVE_BENEATH, RESOLVE_IN_ROOT = 1, 2, 4, 8, 16


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long


def openat2(dir_fd: int, path: str, flags: int, mode: int = 0,
            resolve: int = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    fd = _libc.syscall(_SYS_OPENAT2, ctypes.c_int(dir_fd), os.fsencode(path), ctypes.byref(how),
                       ctypes.c_size_t(ctypes.sizeof(how)))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return fd


def split(path: str) -> tuple[str, str]:
    """("/a/b", "c") for "/a/b/c"; ("/", "") for "/" (the root itself)."""
    norm = posixpath.normpath("/" + path.lstrip("/"))
    if norm == "/":
        return "/", ""
    parent, name = posixpath.split(norm)
    return parent, name


def open_dir(root_fd: int, path: str) -> int:
    """An fd for the directory at ``path`` inside the root (symlinks resolved in the root)."""
    return openat2(root_fd, path.lstrip("/") or ".", os.O_RDONLY | os.O_DIRECTORY)


def lookup(root_fd: int, path: str, follow: bool) -> tuple[int, str]:
    """(fd of the parent directory, final name) for ``path``; with ``follow`` a symlink as the
    final component is resolved (in the root) first, as `cp -L` does. The name is "" for the
    root itself (the fd is then the root's own)."""
    parent, name = split(path)
    if follow and name:
        try:
            fd = openat2(root_fd, path.lstrip("/"), os.O_PATH)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
        else:
            real = os.readlink(f"/proc/self/fd/{fd}")
            os.close(fd)
            root_real = os.readlink(f"/proc/self/fd/{root_fd}")
            inside = "/" + os.path.relpath(real, root_real) if real != root_real else "/"
            parent, name = split(inside)
    pfd = open_dir(root_fd, parent)
    if not name:
        return pfd, ""
    return pfd, name

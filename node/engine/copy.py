"""Files into and out of a container's filesystem (`cp`, `export`, the engine API's archive
routes), running or not.

A running container's merged root is mounted at its bundle's rootfs on the host; a stopped one
gets that same overlay mounted for the duration of the copy (and unmounted after). Every path is
resolved inside that root by node/inroot.py (openat2 RESOLVE_IN_ROOT), so a symlink planted in the
container can never make the host read or write outside it.
"""
from __future__ import annotations

import contextlib
import os
import stat as stat_
import tarfile
from typing import BinaryIO, Iterator

from node import inroot, tarstream
from node.engine import EngineError


@contextlib.contextmanager
def root_fd(container) -> Iterator[int]:
    """An fd of the container's merged root filesystem."""
    from node.engine import rootfs
    target = str(container.rootfs)
    mounted_here = False
    if not os.path.ismount(target):
        rootfs.mount_rootfs(container)
        mounted_here = True
    try:
        fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            yield fd
        finally:
            os.close(fd)
    finally:
        if mounted_here:
            with contextlib.suppress(OSError):
                rootfs.unmount_rootfs(container)


def _missing(path: str) -> EngineError:
    return EngineError(f"Could not find the file {path} in container", 1)


def path_stat(fd: int, path: str, follow: bool = False) -> dict:
    """docker's container path stat: name, size, mode (Go's FileMode bits), mtime, linkTarget."""
    try:
        parent, name = inroot.lookup(fd, path, follow)
    except FileNotFoundError:
        raise _missing(path) from None
    try:
        st = os.stat(name or ".", dir_fd=parent, follow_symlinks=False)
        link = os.readlink(name, dir_fd=parent) if stat_.S_ISLNK(st.st_mode) else ""
    except FileNotFoundError:
        raise _missing(path) from None
    finally:
        os.close(parent)
    mode = stat_.S_IMODE(st.st_mode)
    go_bits = {stat_.S_IFDIR: 1 << 31, stat_.S_IFLNK: 1 << 27, stat_.S_IFIFO: 1 << 25,
               stat_.S_IFSOCK: 1 << 24, stat_.S_IFCHR: (1 << 26) | (1 << 21), stat_.S_IFBLK: 1 << 26}
    mode |= go_bits.get(stat_.S_IFMT(st.st_mode), 0)
    from datetime import datetime, timezone
    mtime = datetime.fromtimestamp(st.st_mtime, timezone.utc).isoformat().replace("+00:00", "Z")
    return {"name": name or "/", "size": st.st_size, "mode": mode, "mtime": mtime, "linkTarget": link,
            "isDir": stat_.S_ISDIR(st.st_mode)}


def archive_from(container, path: str, out: BinaryIO, follow: bool = False, arcname: str | None = None) -> dict:
    """Write a tar of ``path`` (its top entry named ``arcname``, default its base name) to
    ``out``; returns the path's stat."""
    with root_fd(container) as fd:
        info = path_stat(fd, path, follow)
        parent, name = inroot.lookup(fd, path, follow)
        try:
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                tarstream.write_tree(tar, parent, name or ".", arcname if arcname is not None else (name or "."))
        finally:
            os.close(parent)
    return info


def archive_into(container, dest_dir: str, src: BinaryIO, keep_owner: bool = False) -> int:
    """Extract the tar ``src`` into the existing directory ``dest_dir`` of the container."""
    with root_fd(container) as fd:
        try:
            dest = inroot.open_dir(fd, dest_dir)
        except FileNotFoundError:
            raise _missing(dest_dir) from None
        except NotADirectoryError:
            raise EngineError(f"extraction point is not a directory: {dest_dir}", 1) from None
        try:
            return tarstream.extract(src, dest, keep_owner=keep_owner, owner=(0, 0))
        except tarstream.ArchiveError as e:
            raise EngineError(str(e), 1) from None
        finally:
            os.close(dest)

"""Tar streams of directory trees that are reached by fd, and a careful extractor, for `cp`,
`export` and the engine API's archive endpoints.

Both sides treat the tree as hostile (it may be a container's): the writer opens every entry
relative to its parent's fd with ``O_NOFOLLOW`` (a symlink is archived as a symlink, never
followed); the extractor refuses absolute names and ``..``, never writes through a symlink or
a hardlink, replaces what is in the way only when it is not a directory, and sets directory
metadata last so a read-only directory can still be filled. Owners are those of the archive
with ``keep_owner`` (`cp -a`), else ``owner`` (docker: root in a container, the caller on the
host). Hardlinks are kept within one stream.
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import tarfile
from typing import BinaryIO, Iterator

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class ArchiveError(Exception):
    """The archive cannot be written or extracted; the message says which entry and why."""


# -- writing --------------------------------------------------------------------------------

def _info(name: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode, info.uid, info.gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime)
    return info


def write_tree(tar: tarfile.TarFile, parent_fd: int, name: str, arcname: str) -> None:
    """Add ``name`` (an entry of the directory ``parent_fd``) as ``arcname``, recursively."""
    links: dict[tuple[int, int], str] = {}
    _add(tar, parent_fd, name, arcname, links)


def _add(tar: tarfile.TarFile, dir_fd: int, name: str, arcname: str, links: dict) -> None:
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    info = _info(arcname, st)
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        fd = os.open(name, _DIR, dir_fd=dir_fd)
        try:
            for child in sorted(os.listdir(fd)):
                _add(tar, fd, child, f"{arcname}/{child}" if arcname not in ("", ".") else child, links)
        finally:
            os.close(fd)
    elif stat.S_ISLNK(mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=dir_fd)
        tar.addfile(info)
    elif stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            info.type, info.linkname = tarfile.LNKTYPE, links[key]
            tar.addfile(info)
            return
        links[key] = arcname
        info.size = st.st_size
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        with os.fdopen(fd, "rb") as f:
            tar.addfile(info, f)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
        info.type = (tarfile.CHRTYPE if stat.S_ISCHR(mode) else
                     tarfile.BLKTYPE if stat.S_ISBLK(mode) else tarfile.FIFOTYPE)
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        tar.addfile(info)
    # sockets are skipped, as docker skips them


# -- extracting -----------------------------------------------------------------------------

def _parts(name: str) -> list[str]:
    if name.startswith("/"):
        raise ArchiveError(f"refusing archive entry {name!r}: absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ArchiveError(f"refusing archive entry {name!r}: '..' in its path")
    return parts


class _Extractor:
    def __init__(self, dest_fd: int, keep_owner: bool, owner: tuple[int, int]) -> None:
        self.dest_fd, self.keep_owner, self.owner = dest_fd, keep_owner, owner
        self.dirs: list[tuple[list[str], tarfile.TarInfo]] = []

    @contextlib.contextmanager
    def _parent(self, parts: list[str], create: bool = True) -> Iterator[int]:
        fd = os.dup(self.dest_fd)
        try:
            for comp in parts[:-1]:
                try:
                    nxt = os.open(comp, _DIR, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise ArchiveError(f"refusing link through missing {comp!r}") from None
                    os.mkdir(comp, 0o755, dir_fd=fd)
                    nxt = os.open(comp, _DIR, dir_fd=fd)
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise ArchiveError(f"refusing to write through {comp!r}: a symlink or not a "
                                           "directory") from None
                    raise
                os.close(fd)
                fd = nxt
            yield fd
        finally:
            os.close(fd)

    def _clear(self, fd: int, name: str, want_dir: bool) -> None:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if not want_dir:
                raise ArchiveError(f"cannot overwrite directory {name!r} with a non-directory")
            return
        os.unlink(name, dir_fd=fd)

    def place(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = _parts(m.name)
        if not parts:
            return  # the archive's own "." entry
        with self._parent(parts) as fd:
            name = parts[-1]
            self._clear(fd, name, m.isdir())
            if m.isdir():
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o700, dir_fd=fd)
                self.dirs.append((parts, m))
                return
            if m.isreg():
                out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                              0o600, dir_fd=fd)
                with os.fdopen(out, "wb") as f, tar.extractfile(m) as src:
                    while chunk := src.read(1 << 20):
                        f.write(chunk)
            elif m.issym():
                os.symlink(m.linkname, name, dir_fd=fd)
            elif m.islnk():
                target = _parts(m.linkname)
                with self._parent(target, create=False) as tfd:
                    os.link(target[-1], name, src_dir_fd=tfd, dst_dir_fd=fd, follow_symlinks=False)
                return
            elif m.ischr() or m.isblk() or m.isfifo():
                kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
                os.mknod(name, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=fd)
            else:
                return
            self._meta(fd, name, m)

    def _meta(self, fd: int, name: str, m: tarfile.TarInfo) -> None:
        uid, gid = (m.uid, m.gid) if self.keep_owner else self.owner
        os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)
        if not m.issym():
            os.chmod(name, m.mode & 0o7777, dir_fd=fd, follow_symlinks=False)
        os.utime(name, (m.mtime, m.mtime), dir_fd=fd, follow_symlinks=False)

    def finish(self) -> None:
        for parts, m in reversed(self.dirs):  # deepest last-seen first: children before parents
            with self._parent(parts) as fd:
                self._meta(fd, parts[-1], m)


def extract(src: BinaryIO, dest_fd: int, keep_owner: bool = False, owner: tuple[int, int] = (0, 0)) -> int:
    """Extract the tar stream ``src`` into the directory ``dest_fd``; returns the bytes of file
    content written."""
    written = 0
    extractor = _Extractor(dest_fd, keep_owner, owner)
    try:
        with tarfile.open(fileobj=src, mode="r|*") as tar:
            for member in tar:
                extractor.place(tar, member)
                written += member.size if member.isreg() else 0
    except (tarfile.TarError, EOFError) as e:
        raise ArchiveError(f"not a valid tar stream: {e}") from None
    extractor.finish()
    return written

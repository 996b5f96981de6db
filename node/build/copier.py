"""COPY and ADD, written through a mounted overlay of the steps so far (the upper dir becomes the
layer). Destinations are resolved inside the image's root (symlinks in the image cannot lead out:
runner.secure_join), and an existing entry in the way is replaced, never written
through.

Docker's rules (BuildKit's): several sources, a glob, or a destination ending in ``/`` mean the
destination is a directory; a directory source copies its contents, not itself; a single file
copied onto an existing directory lands inside it. Copied entries keep their mode (or take
``--chmod``) and get owner 0:0 (or ``--chown``); directories COPY creates on the way get 0755 and
that owner too. ADD extracts a local tar archive (plain, gzip, zstd) in place of copying it, and
fetches a URL (``--checksum`` checked) into a file of mode 0600.
"""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from oci.record import record

from .context import Context, Source
from .runner import secure_join


class CopyError(ValueError):
    pass


@record
class Owner:
    uid: int = 0
    gid: int = 0


def _mkdirs(root: str, path: str, owner: Owner, created: list[str]) -> str:
    """``path`` (inside the image) as a directory, created with 0755 and ``owner`` where missing."""
    host = secure_join(root, path)
    missing = []
    probe = host
    while not os.path.lexists(probe) and probe != root:
        missing.append(probe)
        probe = os.path.dirname(probe)
    if os.path.lexists(probe) and not os.path.isdir(probe):
        raise CopyError(f"cannot copy to {path}: {probe[len(root):] or '/'} is not a directory")
    for d in reversed(missing):
        os.mkdir(d, 0o755)
        os.chmod(d, 0o755)  # umask aside
        os.lchown(d, owner.uid, owner.gid)
        created.append(d)
    return host


def _replace(host: str, want_dir: bool) -> None:
    try:
        st = os.lstat(host)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if want_dir:
            return
        shutil.rmtree(host)
    else:
        os.unlink(host)


def copy_xattrs(src: Path, host: str) -> None:
    """Extended attributes of a context entry (user.*, security.capability...), as BuildKit's
    copy keeps them; overlay's own are never taken from outside."""
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        if name.startswith("trusted.overlay.") or name == "security.selinux":
            continue
        try:
            os.setxattr(host, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
        except OSError:
            pass  # a filesystem or an entry type (symlink + user.*) that cannot hold it


def _apply(host: str, st: os.stat_result | None, owner: Owner | None, chmod: int | None,
           is_link: bool = False) -> None:
    """Owner (``None``: the source's own), then mode (chown clears setuid), then mtime."""
    if owner is None and st is not None:
        os.lchown(host, st.st_uid, st.st_gid)
    else:
        owner = owner or Owner()
        os.lchown(host, owner.uid, owner.gid)
    if not is_link:
        mode = chmod if chmod is not None else stat.S_IMODE(st.st_mode) if st else 0o644
        os.chmod(host, mode)
    if st is not None:
        os.utime(host, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)


class Copier:
    def __init__(self, root: str, owner: Owner | None = None, chmod: int | None = None) -> None:
        self.root = root
        self.owner = owner or Owner()
        self.chmod = chmod
        self.links: dict[tuple[int, int], str] = {}
        # A copy from a stage or image keeps owners (unless --chown) and xattrs; one from the
        # context makes everything 0:0 and has no xattrs (docker's context transfer carries none)
        self.keep_xattrs = False
        self.chowned = owner is not None
        self.keep_owner = False
        self.created: list[str] = []

    def _owner(self) -> Owner | None:
        return None if self.keep_owner else self.owner

    def _file(self, src: Path, st: os.stat_result, host: str) -> None:
        key = (st.st_dev, st.st_ino)
        _replace(host, want_dir=False)
        if st.st_nlink > 1 and key in self.links:
            os.link(self.links[key], host)
            return
        fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            fd_out = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                with open(fd_in, "rb", closefd=False) as fin, open(fd_out, "wb", closefd=False) as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)
            finally:
                os.close(fd_out)
        finally:
            os.close(fd_in)
        _apply(host, st, self._owner(), self.chmod)
        if self.keep_xattrs:
            copy_xattrs(src, host)  # after chown: it would drop security.capability
        if st.st_nlink > 1:
            self.links[key] = host

    def _entry(self, src: Path, st: os.stat_result, dest: str) -> None:
        host = secure_join(self.root, dest)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            _replace(host, want_dir=True)
            if not os.path.isdir(host):
                os.mkdir(host, 0o700)
            _apply(host, st, self._owner(), self.chmod)
            if self.keep_xattrs:
                copy_xattrs(src, host)
        elif stat.S_ISREG(mode):
            self._file(src, st, host)
        elif stat.S_ISLNK(mode):
            _replace(host, want_dir=False)
            os.symlink(os.readlink(src), host)
            _apply(host, st, self._owner(), None, is_link=True)
        elif stat.S_ISFIFO(mode):
            _replace(host, want_dir=False)
            os.mkfifo(host, 0o600)
            _apply(host, st, self._owner(), self.chmod)
        # sockets and devices in a context are skipped, as docker does

    def copy_source(self, ctx: Context, source: Source, dest: str, dest_is_dir: bool, extract: bool = False) -> None:
        """One source to ``dest`` (an absolute path inside the image)."""
        self.keep_owner = ctx.rootfs and not self.chowned
        self.keep_xattrs = ctx.rootfs
        st = source.st
        if stat.S_ISDIR(st.st_mode):
            _mkdirs(self.root, dest, self.owner, self.created)
            host = secure_join(self.root, dest)
            # the directory itself takes the source's metadata only when COPY made it
            if host in self.created:
                _apply(host, st, self._owner(), self.chmod)
            dirs = []
            for sub, path, sub_st in ctx.walk(source):
                target = f"{dest.rstrip('/')}/{sub}"
                self._entry(path, sub_st, target)
                if stat.S_ISDIR(sub_st.st_mode):
                    dirs.append((target, sub_st))
            for target, sub_st in reversed(dirs):  # children changed their parents' mtimes
                host = secure_join(self.root, target)
                os.utime(host, ns=(sub_st.st_mtime_ns, sub_st.st_mtime_ns), follow_symlinks=False)
            return
        name = os.path.basename(source.rel) or os.path.basename(str(source.path))
        target = self._file_target(dest, dest_is_dir, name)
        if extract and stat.S_ISREG(st.st_mode) and is_archive(source.path):
            self._extract(source.path, dest)
            return
        self._entry(source.path, st, target)

    def _file_target(self, dest: str, dest_is_dir: bool, name: str) -> str:
        host = secure_join(self.root, dest)
        if dest_is_dir or os.path.isdir(host):
            _mkdirs(self.root, dest, self.owner, self.created)
            return f"{dest.rstrip('/')}/{name}"
        parent = os.path.dirname(dest.rstrip("/")) or "/"
        _mkdirs(self.root, parent, self.owner, self.created)
        return dest

    def write_file(self, dest: str, dest_is_dir: bool, name: str, data: bytes, mode: int, mtime: int | None) -> None:
        """A heredoc or a fetched URL: ``data`` as a new file."""
        target = self._file_target(dest, dest_is_dir, name)
        host = secure_join(self.root, target)
        _replace(host, want_dir=False)
        fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.lchown(host, self.owner.uid, self.owner.gid)
        os.chmod(host, self.chmod if self.chmod is not None else mode)
        if mtime is not None:
            os.utime(host, (mtime, mtime), follow_symlinks=False)

    def _extract(self, archive: Path, dest: str) -> None:
        from node.images.errors import ImageError
        from node.images.unpack import unpack_layer
        host = _mkdirs(self.root, dest, self.owner, self.created)
        try:
            with open(archive, "rb") as f:
                unpack_layer(f, Path(host))
        except ImageError as e:
            raise CopyError(f"ADD {archive.name}: {e}") from None


def is_archive(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:2] == b"\x1f\x8b" or head[:4] == b"\x28\xb5\x2f\xfd":
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"

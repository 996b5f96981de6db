"""Safe, streaming extraction of one layer tar into a snapshot directory.

A layer is hostile input. The tar is read in stream mode over a decompressor (never
``extractall``), and every entry is placed with directory file descriptors:

- names are split into components; ``..`` anywhere is refused, a leading ``/`` is stripped;
- each parent directory is opened with ``O_NOFOLLOW`` relative to the one before it, so an entry
  can never be written through a symlink (the layer's own, or one planted earlier in the stream);
  the final component is created with ``dir_fd`` and never followed either;
- hardlink targets are resolved the same way (inside the snapshot, no symlink on the way) and
  must not be directories;
- whiteouts become overlayfs' form: ``.wh.NAME`` -> a 0/0 character device NAME, the opaque
  marker ``.wh..wh..opq`` -> ``trusted.overlay.opaque=y`` on its directory. Overlay xattrs coming
  from the tar itself are dropped (a layer must not steer overlayfs, e.g. with redirects);
- ownership (lchown), modes incl. setuid (set after chown, which clears them), xattrs (PAX
  ``SCHILY.xattr.*``) and mtimes are kept; directory mtimes are set last, since creating their
  children changes them;
- the decompressed size is bounded; the diff_id (sha256 of the uncompressed tar) is computed on
  the way and checked when the caller knows the expected one.

The caller unpacks into a fresh temporary directory and renames it into place only on success,
so a failure here leaves nothing visible (see store.py).
"""
from __future__ import annotations

import errno
import gzip
import os
import shutil
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from oci.digest import Digest, Hasher

from .errors import DigestMismatch, UnpackError

DEFAULT_MAX_LAYER_SIZE = int(os.environ.get("DOCKYARD_MAX_LAYER_SIZE", 8 << 30))
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _CountingReader:
    """The uncompressed stream as tarfile reads it: hashes what passes (the diff_id) and
    enforces the size bound.

    The decompressor is read (and its output hashed) in ``_CHUNK`` pieces, whatever size
    tarfile asks for: its stream mode pulls 10 KiB at a time, and a decompressor call plus a
    hash update per 10 KiB cost more than the inflating itself. tarfile reads headers and data
    strictly in order, so a forward-only ``seek`` (skipping bytes) is all it needs; a backward
    seek is refused, as tarfile's own stream mode refuses it.
    """

    def __init__(self, raw: BinaryIO, limit: int) -> None:
        self.raw, self.limit, self.hasher = raw, limit, Hasher("sha256")
        self._buf, self._pos, self._start = b"", 0, 0  # _start: stream offset of _buf[0]

    def _fill(self) -> bool:
        self._start += len(self._buf)
        self._buf, self._pos = self.raw.read(_CHUNK), 0
        if not self._buf:
            return False
        self.hasher.update(self._buf)
        if self.hasher.size > self.limit:
            raise UnpackError(f"layer is larger than {self.limit} bytes uncompressed (limit; "
                              "set DOCKYARD_MAX_LAYER_SIZE to raise it)")
        return True

    def read(self, n: int = -1) -> bytes:
        """``n`` bytes (fewer only at the end of the stream); ``n < 0``: what is buffered."""
        if self._pos >= len(self._buf) and not self._fill():
            return b""
        if n is None or n < 0:
            n = len(self._buf) - self._pos
        end = self._pos + n
        if end <= len(self._buf):
            piece = self._buf if self._pos == 0 and end == len(self._buf) else self._buf[self._pos:end]
            self._pos = end
            return piece
        pieces, want = [self._buf[self._pos:]], n - (len(self._buf) - self._pos)
        while want > 0 and self._fill():
            take = self._buf[:want]
            pieces.append(take)
            self._pos = len(take)
            want -= len(take)
        if want > 0:
            self._pos = len(self._buf)
        return b"".join(pieces)

    def tell(self) -> int:
        return self._start + self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0 or offset < self.tell():
            raise tarfile.StreamError("seeking backwards is not allowed in a layer stream")
        skip = offset - self.tell()
        while skip > 0:
            if self._pos >= len(self._buf) and not self._fill():
                break
            step = min(skip, len(self._buf) - self._pos)
            self._pos += step
            skip -= step
        return self.tell()

    def copy_to(self, fd: int, n: int, count) -> None:
        """Write the next ``n`` bytes to ``fd`` straight out of the buffer: tarfile's extractfile
        would copy every piece twice more (its file object and a BufferedReader) on the way.
        ``count(k)`` hears of each piece before it is written (the write bound)."""
        while n > 0:
            if self._pos >= len(self._buf) and not self._fill():
                raise tarfile.ReadError("unexpected end of data")
            piece = memoryview(self._buf)[self._pos:self._pos + n]
            count(len(piece))
            _write_all(fd, piece)
            self._pos += len(piece)
            n -= len(piece)

    def drain(self) -> None:
        while self._fill():
            pass


def _decompressor(src: BinaryIO) -> BinaryIO:
    """Choose by magic bytes, not media type: registries and tools mislabel layers."""
    head = src.read(4)
    src.seek(0)
    if head[:2] == b"\x1f\x8b":
        # ISA-L's inflate (isal, a dependency) through the same GzipFile interface: ~7x the
        # throughput of the gzip module's inflate + Python reader on layer-sized data.
        from isal import igzip

        return igzip.GzipFile(fileobj=src, mode="rb")
    if head == b"\x28\xb5\x2f\xfd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True)
    return src


@dataclass
class UnpackResult:
    diff_id: Digest
    size: int  # uncompressed tar bytes


def unpack_layer(src: BinaryIO, dest: Path, expected_diff_id: Digest | None = None,
                 max_size: int = DEFAULT_MAX_LAYER_SIZE) -> UnpackResult:
    """Extract the (compressed or plain) layer tar read from ``src`` into the existing, empty
    directory ``dest``. Raises UnpackError / DigestMismatch with a readable reason."""
    reader = _CountingReader(_decompressor(src), max_size)
    root_fd = os.open(dest, _DIR_FLAGS)
    extractor = _Extractor(root_fd, max_size)
    extractor.stream = reader
    try:
        try:
            # Not tarfile.open(mode="r|"): its stream layer re-buffers in 10 KiB reads; the
            # reader above already is the forward-only stream that mode needs.
            with tarfile.TarFile(fileobj=reader, mode="r", errorlevel=2) as tar:
                for member in tar:
                    extractor.place(tar, member)
            reader.drain()
        except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error, _isal_errors(), _zstd_errors()) as e:
            raise UnpackError(f"layer is not a valid tar stream: {e}") from None
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise UnpackError("no space left on device while unpacking the layer") from None
            raise UnpackError(f"cannot unpack layer: {e}") from None
        extractor.finish()
    finally:
        extractor.close()
        os.close(root_fd)
    diff_id = reader.hasher.digest()
    if expected_diff_id is not None and diff_id != expected_diff_id:
        raise DigestMismatch(f"layer diff_id mismatch: config says {expected_diff_id}, content is {diff_id}")
    return UnpackResult(diff_id, reader.hasher.size)


def _isal_errors() -> type[Exception]:
    from isal import isal_zlib

    return isal_zlib.error


def _zstd_errors() -> type[Exception]:
    try:
        import zstandard

        return zstandard.ZstdError
    except ImportError:  # pragma: no cover - zstandard is a dependency
        return UnpackError


def split_name(name: str) -> list[str]:
    """Components of a tar member name, inside the root; ``..`` is refused, ``/`` and ``.`` dropped."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnpackError(f"refusing layer entry {name!r}: path leaves the layer root ('..')")
    if "\0" in name:
        raise UnpackError(f"refusing layer entry {name!r}: NUL in name")
    return parts


class _Extractor:
    def __init__(self, root_fd: int, max_written: int) -> None:
        # Sparse entries expand holes into zeros: bound what is written, not only what is read.
        self.max_written, self.written = max_written, 0
        self.root_fd = root_fd
        self.stream: _CountingReader | None = None  # set by unpack_layer: file data is copied from it
        self.dirs: list[tuple[list[str], tarfile.TarInfo]] = []  # metadata applied at the end
        self.root_member: tarfile.TarInfo | None = None

    # -- walking --------------------------------------------------------------------------

    def _open_parent(self, parts: list[str], name: str, create: bool = True) -> int:
        """A new fd for the directory holding the last component; never follows a symlink."""
        fd = os.dup(self.root_fd)
        try:
            for comp in parts[:-1]:
                try:
                    nxt = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise UnpackError(f"refusing link to {name!r}: {comp!r} is not in this layer") from None
                    os.mkdir(comp, 0o755, dir_fd=fd)
                    nxt = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise UnpackError(f"refusing layer entry {name!r}: {comp!r} is a symlink or not a "
                                          "directory (no writing through links)") from None
                    raise
                os.close(fd)
                fd = nxt
            return fd
        except BaseException:
            os.close(fd)
            raise

    @staticmethod
    def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def _clear(self, name: str, dir_fd: int, keep_dir: bool) -> None:
        """Make room for a new entry: a later tar entry replaces an earlier one."""
        st = self._lstat(name, dir_fd)
        if st is None:
            return
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return
            shutil.rmtree(name, dir_fd=dir_fd)
        else:
            os.unlink(name, dir_fd=dir_fd)

    # -- entries --------------------------------------------------------------------------

    def place(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = split_name(m.name)
        if not parts:
            if m.isdir():
                self.root_member = m
                return
            raise UnpackError(f"refusing layer entry {m.name!r}: it names the layer root")
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parts, m.name)
            return
        parent = self._open_parent(parts, m.name)
        try:
            self._clear(base, parent, keep_dir=m.isdir())
            if m.isdir():
                if self._lstat(base, parent) is None:
                    os.mkdir(base, 0o700, dir_fd=parent)
                self.dirs.append((parts, m))
            elif m.isreg():
                self._file(tar, m, base, parent)
            elif m.issym():
                os.symlink(m.linkname, base, dir_fd=parent)
                self._meta(m, base, parent)
            elif m.islnk():
                self._hardlink(m, base, parent)
            elif m.ischr() or m.isblk() or m.isfifo():
                kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
                os.mknod(base, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=parent)
                self._meta(m, base, parent)
            else:
                raise UnpackError(f"refusing layer entry {m.name!r}: unsupported tar type {m.type!r}")
        finally:
            os.close(parent)

    def _file(self, tar: tarfile.TarFile, m: tarfile.TarInfo, base: str, parent: int) -> None:
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent)
        try:
            if self.stream is not None and not m.issparse():  # the data follows the header as is
                self.stream.seek(m.offset_data)
                self.stream.copy_to(fd, m.size, self._count)
            elif (data := tar.extractfile(m)) is not None:  # sparse: tarfile expands the holes
                while chunk := data.read(_CHUNK):
                    self._count(len(chunk))
                    _write_all(fd, chunk)
            self._meta(m, None, None, fd=fd)
        finally:
            os.close(fd)

    def _count(self, n: int) -> None:
        self.written += n
        if self.written > self.max_written:
            raise UnpackError(f"layer writes more than {self.max_written} bytes (limit; set "
                              "DOCKYARD_MAX_LAYER_SIZE to raise it)")

    def _hardlink(self, m: tarfile.TarInfo, base: str, parent: int) -> None:
        target = split_name(m.linkname)
        if not target:
            raise UnpackError(f"refusing hardlink {m.name!r}: target {m.linkname!r} is the layer root")
        tparent = self._open_parent(target, m.linkname, create=False)
        try:
            st = self._lstat(target[-1], tparent)
            if st is None:
                raise UnpackError(f"refusing hardlink {m.name!r}: target {m.linkname!r} is not in this layer")
            if stat.S_ISDIR(st.st_mode):
                raise UnpackError(f"refusing hardlink {m.name!r}: target {m.linkname!r} is a directory")
            os.link(target[-1], base, src_dir_fd=tparent, dst_dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(tparent)

    def _whiteout(self, parts: list[str], name: str) -> None:
        base = parts[-1]
        parent = self._open_parent(parts, name)
        try:
            if base == OPAQUE_MARKER:
                os.setxattr(parent, OPAQUE_XATTR, b"y")
                return
            hidden = base[len(WHITEOUT_PREFIX):]
            if hidden in ("", ".", "..") or hidden.startswith(WHITEOUT_PREFIX):
                raise UnpackError(f"refusing whiteout {name!r}: it names no entry")
            self._clear(hidden, parent, keep_dir=False)
            os.mknod(hidden, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=parent)
        finally:
            os.close(parent)

    # -- metadata -------------------------------------------------------------------------

    def _meta(self, m: tarfile.TarInfo, base: str | None, parent: int | None, fd: int | None = None) -> None:
        """Owner, then mode (chown clears setuid), then xattrs, then mtime."""
        link = m.issym()
        if fd is not None:
            os.fchown(fd, m.uid, m.gid)
            os.fchmod(fd, m.mode & 0o7777)
        else:
            os.chown(base, m.uid, m.gid, dir_fd=parent, follow_symlinks=False)
            if not link:  # symlink modes mean nothing on Linux
                _chmod_via_fd(base, parent, m.mode & 0o7777)
        for key, value in _xattrs(m):
            try:
                if fd is not None:
                    os.setxattr(fd, key, value)
                else:
                    os.setxattr(f"/proc/self/fd/{parent}/{base}", key, value, follow_symlinks=False)
            except OSError as e:
                if e.errno not in (errno.ENOTSUP, errno.EPERM):  # e.g. user.* on a symlink
                    raise
        times = (m.mtime, m.mtime)
        if fd is not None:
            os.utime(fd, times)
        else:
            os.utime(base, times, dir_fd=parent, follow_symlinks=False)

    def finish(self) -> None:
        """Directory metadata, deepest first, so setting a parent's mtime is the last touch."""
        for parts, m in sorted(self.dirs, key=lambda d: -len(d[0])):
            parent = self._open_parent(parts, m.name, create=False)
            try:
                fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
            except OSError:  # replaced by a later non-directory entry: nothing to do
                os.close(parent)
                continue
            try:
                self._meta(m, None, None, fd=fd)
            finally:
                os.close(fd)
                os.close(parent)
        if self.root_member is not None:
            self._meta(self.root_member, None, None, fd=self.root_fd)

    def close(self) -> None:
        self.dirs.clear()


def _chmod_via_fd(base: str, parent: int, mode: int) -> None:
    # Devices and fifos must not be opened (that would block or touch hardware): O_PATH gives
    # an fd that names the inode, and chmod through /proc/self/fd works on it.
    fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    try:
        os.chmod(f"/proc/self/fd/{fd}", mode)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _xattrs(m: tarfile.TarInfo) -> list[tuple[str, bytes]]:
    out = []
    for key, value in m.pax_headers.items():
        if not key.startswith("SCHILY.xattr."):
            continue
        name = key[len("SCHILY.xattr."):]
        if name.startswith("trusted.overlay.") or not name:
            continue  # overlayfs' own metadata is ours to write, never the layer's
        out.append((name, value.encode("utf-8", "surrogateescape")))
    return out

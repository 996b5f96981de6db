"""A step's upper directory -> one layer: the tar (the differ), gzip, and the store.

The upper dir of an overlay (a RUN container's, or the one a COPY wrote through) already is the
diff, in overlay's form. It is read as Docker's overlay differ reads it:
- a 0/0 character device is a deletion: ``.wh.NAME``;
- a directory with ``trusted.overlay.opaque=y`` replaced the one below: the dir and
  ``DIR/.wh..wh..opq``; overlay's other private xattrs (origin, impure...) are dropped;
- files sharing an inode inside the layer become one file and hardlinks to it (never a link
  into a lower layer: the first path in sorted order carries the data);
- symlinks, modes (setuid too), owners and xattrs are kept; device nodes and fifos too.

The tar is reproducible: entries in byte order of their paths, no user/group names, PAX headers
only where a field needs one, mtimes clamped to SOURCE_DATE_EPOCH when it is set, and a gzip
header with neither time nor name. Hashing runs on the way (diff_id of the tar, digest of the
gzip), so the layer is written once and stored ready to push.

``commit`` moves the upper dir itself into the snapshot store (it is already an overlayfs lower
dir), so nothing is unpacked again.
"""
from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from pathlib import Path

from oci import mediatypes as mt
from oci.digest import Digest, Hasher
from oci.manifest import chain_ids
from oci.record import record

OPAQUE_XATTR = "trusted.overlay.opaque"
# What a RUN container has mounted over its rootfs: never part of a layer (docker's rule).
RUNTIME_FILES = ("etc/resolv.conf", "etc/hosts", "etc/hostname", ".dockerenv")
MOUNTPOINT_DIRS = ("proc", "sys", "dev")
LAYER_MEDIA_TYPE = mt.DOCKER_LAYER_GZIP
PLAIN_MEDIA_TYPE = "application/vnd.docker.image.rootfs.diff.tar"
_CHUNK = 1 << 20


@record
class Layer:
    digest: Digest      # of the compressed blob
    size: int           # compressed bytes
    diff_id: Digest     # of the tar
    tar_size: int
    media_type: str = LAYER_MEDIA_TYPE

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "size": self.size, "digest": str(self.digest)}


class _HashingFile(io.RawIOBase):
    """A write-only file that hashes and forwards (to another file, or nowhere)."""

    def __init__(self, target) -> None:
        self.target = target
        self.hasher = Hasher("sha256")

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.hasher.update(data)
        if self.target is not None:
            self.target.write(data)
        return len(data)


def _exists_below(lowers: list[Path], rel: str) -> bool:
    return any(os.path.lexists(os.path.join(d, rel)) for d in lowers)


def runtime_leftovers(upper: Path, lowers: list[Path]) -> set[str]:
    """The mount points the runtime made in an upper dir (the bind-mounted /etc files, and
    /proc, /sys, /dev when the image had none and they hold nothing else): not a layer's."""
    found = set()
    for rel in RUNTIME_FILES:
        try:
            st = os.lstat(upper / rel)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if not stat.S_ISCHR(st.st_mode):  # a whiteout would be a real deletion: none can happen
            found.add(rel)
    for rel in MOUNTPOINT_DIRS + ("etc",):
        path = upper / rel
        if path.is_dir() and not path.is_symlink() and all(f"{rel}/{n}" in found for n in os.listdir(path)) and (
                not _exists_below(lowers, rel) or _copied_up_only(path, lowers, rel)):
            found.add(rel)
    return found


def clean_runtime_leftovers(upper: Path, lowers: list[Path]) -> None:
    """After a RUN: delete runtime_leftovers() from the step's upper dir."""
    for rel in sorted(runtime_leftovers(upper, lowers), key=len, reverse=True):  # files first
        path = upper / rel
        if path.is_dir() and not path.is_symlink():
            os.rmdir(path)
        else:
            os.unlink(path)


def _copied_up_only(path: Path, lowers: list[Path], rel: str) -> bool:
    """An empty upper dir that overlay copied up (for a mount point below it) and that differs
    from the one beneath in nothing but its mtime: not a change of the step's."""
    if _is_opaque(str(path)):
        return False
    st = os.lstat(path)
    for lower in reversed(lowers):
        try:
            below = os.lstat(os.path.join(lower, rel))
        except FileNotFoundError:
            continue
        return (below.st_mode, below.st_uid, below.st_gid) == (st.st_mode, st.st_uid, st.st_gid) and \
            _xattrs(str(path)) == _xattrs(os.path.join(lower, rel))
    return False


def _sorted_walk(root: Path):
    # depth-first order with sorted siblings is what `tar` of a sorted tree gives; entries of
    # a directory come right after it, so an extractor always has the parent first
    out = []

    def visit(rel: str) -> None:
        base = os.path.join(root, rel) if rel else str(root)
        for name in sorted(os.listdir(base), key=lambda n: n.encode("utf-8", "surrogateescape")):
            child = f"{rel}/{name}" if rel else name
            st = os.lstat(os.path.join(base, name))
            out.append((child, st))
            if stat.S_ISDIR(st.st_mode):
                visit(child)
    visit("")
    return out


def _xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for name in sorted(names):
        if name.startswith("trusted.overlay."):
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
    return out


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def write_tar(upper: Path, out, epoch: int | None, skip: frozenset | set = frozenset()) -> None:
    """The layer tar of ``upper`` written to the binary file ``out``, less the paths in ``skip``
    (what `commit` must leave out of a live container's upper dir it cannot change)."""
    tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8",
                       errors="surrogateescape")
    links: dict[tuple[int, int], str] = {}
    try:
        for rel, st in _sorted_walk(upper):
            if rel in skip:
                continue
            full = os.path.join(upper, rel)
            mtime = int(st.st_mtime)
            if epoch is not None and mtime > epoch:
                mtime = epoch
            mode = st.st_mode
            if stat.S_ISCHR(mode) and st.st_rdev == 0:
                head, _, name = rel.rpartition("/")
                info = _info(f"{head}/.wh.{name}" if head else f".wh.{name}", mtime)
                tar.addfile(info)
                continue
            info = _info(rel, mtime)
            info.mode = stat.S_IMODE(mode)
            info.uid, info.gid = st.st_uid, st.st_gid
            xattrs = _xattrs(full)
            if xattrs:
                info.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
                                    for k, v in xattrs.items()}
            if stat.S_ISDIR(mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                if _is_opaque(full):
                    tar.addfile(_info(f"{rel}/.wh..wh..opq", mtime))
            elif stat.S_ISLNK(mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(full)
                tar.addfile(info)
            elif stat.S_ISREG(mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in links:
                    info.type, info.linkname = tarfile.LNKTYPE, links[key]
                    tar.addfile(info)
                    continue
                if st.st_nlink > 1:
                    links[key] = rel
                info.size = st.st_size
                with open(full, "rb") as f:
                    tar.addfile(info, f)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE if stat.S_ISBLK(mode) else tarfile.FIFOTYPE
                info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                tar.addfile(info)
            # sockets are not archived (docker skips them too)
    finally:
        tar.close()


def _info(name: str, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = mtime
    info.uname = info.gname = ""
    info.mode = 0
    return info


def _gzip_writer(fileobj):
    """A gzip stream without time or name in its header. ISA-L's igzip (the ``isal`` package)
    compresses ~10x faster than zlib at a similar ratio, which makes it most of a cold build's
    CPU time saved; plain zlib when it is missing."""
    try:
        from isal import igzip
        return igzip.IGzipFile(filename="", mode="wb", fileobj=fileobj, mtime=0, compresslevel=2)
    except ImportError:
        return gzip.GzipFile(filename="", mode="wb", fileobj=fileobj, mtime=0, compresslevel=6)


def write_layer(upper: Path, dest: Path, epoch: int | None, skip: frozenset | set = frozenset(),
                compress: bool = True) -> Layer:
    """Tar + gzip ``upper`` into the file ``dest``, hashing both on the way (the content store
    fsyncs the blob when it commits it). ``compress=False``: the plain tar (what `commit`
    stores, as docker does; a push compresses it)."""
    if not compress:
        with open(dest, "wb") as f:
            plain = _HashingFile(f)
            buffered = io.BufferedWriter(plain, buffer_size=_CHUNK)
            write_tar(upper, buffered, epoch, skip)
            buffered.flush()
        digest, size = plain.hasher.digest(), plain.hasher.size
        return Layer(digest, size, digest, size, PLAIN_MEDIA_TYPE)
    with open(dest, "wb") as f:
        outer = _HashingFile(f)
        gz = _gzip_writer(outer)
        inner = _HashingFile(gz)
        buffered = io.BufferedWriter(inner, buffer_size=_CHUNK)
        write_tar(upper, buffered, epoch, skip)
        buffered.flush()
        gz.close()
    return Layer(outer.hasher.digest(), outer.hasher.size, inner.hasher.digest(), inner.hasher.size)


def is_empty_dir(upper: Path) -> bool:
    return not any(os.scandir(upper))


def commit(content, upper: Path, tmp_blob: Path, layer: Layer, parent_diff_ids: list[Digest]) -> Digest:
    """Store the blob and adopt ``upper`` as the snapshot of the new chain. Returns the chain ID.
    An identical layer already stored (same parent chain, same diff_id) is kept and ``upper``
    left for the caller to delete."""
    chain = chain_ids([*parent_diff_ids, layer.diff_id])[-1]
    with content.blob_lock(layer.digest):
        if content.has_blob(layer.digest):
            tmp_blob.unlink()
        else:
            content.commit_file(layer.digest, tmp_blob, layer.size, hashed=(layer.digest, layer.size))
    content.adopt_snapshot(chain, upper, layer.diff_id, layer.tar_size, layer.digest)
    return chain

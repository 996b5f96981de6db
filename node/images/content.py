"""Bytes on the node: blobs by digest and layer snapshots by chain ID.

Layout under ``<root>/images``::

    content/blobs/sha256/<hex>        verified blobs: manifests, configs, compressed layers
    content/ingest/<hex>.part         a download in progress (resumed with Range)
    snapshots/<chain-hex>/fs/         one unpacked layer: an overlayfs lowerdir as is
    snapshots/<chain-hex>/meta.json   {"diff_id", "size"}: a settled snapshot (its files are on disk)
    snapshots/<chain-hex>/meta.<boot>.json  the same for a snapshot made in boot <boot> whose
                                      files may still be only in the page cache (see settle)
    snapshots.pending                 some snapshot of this boot is not settled yet
    snapshots/.tmp-<chain-hex>-<pid>  an unpack in progress (never a visible snapshot)
    locks/                            flock files: one per blob and snapshot being made
    gc.lock, images.lock              (store.py) sweep vs pulls; the records file

Blobs are hashed before they are renamed into place; snapshots are unpacked into a temp dir
and renamed when complete. Whoever holds a blob's or snapshot's lock makes it; a concurrent
puller waits on the lock, then finds it done. So an interrupted pull leaves at most an ingest
file (resumed next time) and a temp dir (removed by the next unpack of that layer).

A power cut is another matter. Blobs are fsynced before their rename, but an unpacked layer is
thousands of files, and fsyncing them, or one syncfs, before the rename would put the disk's
write speed on every pull's critical path (containerd's opt-in sync_fs is the same trade). Left
alone, the rename's metadata can reach the journal before the files' data: after the crash the
snapshot looks complete and holds empty files, forever. So a new snapshot's meta is named
after the boot that made it: it counts only in that boot, until ``settle`` (one syncfs, later,
by the next command that writes the store) renames it meta.json. A snapshot left unsettled by
a reboot counts as missing and is unpacked again from its blob, which is durable.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from oci.digest import Digest, hash_file

from .errors import DigestMismatch
from .fsutil import atomic_write, fsync_dir, locked, try_lock


class ContentStore:
    def __init__(self, images_dir: Path) -> None:
        self.dir = images_dir
        self.blobs = images_dir / "content" / "blobs"
        self.ingest = images_dir / "content" / "ingest"
        self.snapshots = images_dir / "snapshots"
        self.locks = images_dir / "locks"

    # -- blobs ----------------------------------------------------------------------------

    def blob_path(self, digest: Digest) -> Path:
        return self.blobs / digest.algorithm / digest.hex

    def has_blob(self, digest: Digest) -> bool:
        return self.blob_path(digest).is_file()

    def read_blob(self, digest: Digest) -> bytes:
        return self.blob_path(digest).read_bytes()

    def ingest_path(self, digest: Digest) -> Path:
        self.ingest.mkdir(parents=True, exist_ok=True)
        return self.ingest / f"{digest.hex}.part"

    def blob_lock(self, digest: Digest):
        return locked(self.locks / f"blob-{digest.hex}.lock")

    def commit_file(self, digest: Digest, tmp: Path, size: int | None = None,
                    hashed: tuple[Digest, int] | None = None) -> Path:
        """Verify ``tmp`` against the digest (and size), then rename it into the store.
        ``hashed``: digest and size the caller computed while writing every byte of ``tmp``."""
        actual, actual_size = hashed or hash_file(str(tmp), digest.algorithm)
        if actual != digest or (size is not None and actual_size != size):
            tmp.unlink(missing_ok=True)
            raise DigestMismatch(f"blob {digest} failed verification: got {actual} ({actual_size} bytes"
                                 + (f", expected {size})" if size is not None else ")"))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        dest = self.blob_path(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
        return dest

    def write_blob(self, data: bytes, digest: Digest | None = None) -> Digest:
        actual = Digest.of(data, digest.algorithm if digest else "sha256")
        if digest is not None and actual != digest:
            raise DigestMismatch(f"blob {digest} failed verification: content is {actual}")
        if not self.has_blob(actual):
            atomic_write(self.blob_path(actual), data)
        return actual

    def remove_blob(self, digest: Digest) -> None:
        self.blob_path(digest).unlink(missing_ok=True)

    def list_blobs(self) -> list[Digest]:
        out = []
        for alg_dir in self.blobs.glob("*"):
            for p in alg_dir.iterdir():
                try:
                    out.append(Digest.parse(f"{alg_dir.name}:{p.name}"))
                except ValueError:
                    pass
        return out

    # -- snapshots ------------------------------------------------------------------------

    def snapshot_dir(self, chain_id: Digest) -> Path:
        return self.snapshots / chain_id.hex

    def has_snapshot(self, chain_id: Digest) -> bool:
        return snapshot_meta(self.snapshot_dir(chain_id)) is not None

    def settle(self) -> int:
        """Make this boot's unsettled snapshots durable: one syncfs of the store's filesystem,
        then their meta.<boot>.json becomes meta.json. Returns how many were settled.

        Only snapshots already in place before the sync are renamed (their files were written
        before their meta, their meta before the rename into place). One made meanwhile
        re-creates the marker after its rename, so the next settle finds it."""
        marker = self.dir / "snapshots.pending"
        if not marker.exists():
            return 0
        with locked(self.locks / "settle.lock"):
            try:
                os.unlink(marker)
            except FileNotFoundError:
                return 0  # another process settled them while we waited
            name = _pending_name()
            found = [d for d in self.snapshots.iterdir()
                     if not d.name.startswith(".") and (d / name).is_file()]
            if found:
                _syncfs(self.snapshots)
            for d in found:
                os.rename(d / name, d / "meta.json")
            if found:
                fsync_dir(self.snapshots)  # not needed for safety: a lost rename is re-unpacked
            return len(found)

    def _placed(self, tmp: Path, final: Path, meta: dict) -> None:
        """Write the meta of the snapshot in ``tmp`` and rename it to ``final``, unsettled."""
        (tmp / _pending_name()).write_text(json.dumps(meta))
        os.rename(tmp, final)
        fsync_dir(self.snapshots)
        (self.dir / "snapshots.pending").touch()  # after the rename: see settle

    def snapshot_size(self, chain_id: Digest) -> int:
        """The layer's size as docker counts it (``content_size``); snapshots unpacked by an
        older version only know their tar size."""
        try:
            meta = json.loads(snapshot_meta(self.snapshot_dir(chain_id)).read_text())
            return int(meta.get("content_size", meta["size"]))
        except (OSError, ValueError, KeyError, AttributeError):
            return 0

    def unpack(self, layer: Digest, diff_id: Digest, chain_id: Digest, max_size: int | None = None) -> Path:
        """Unpack the stored blob ``layer`` as snapshot ``chain_id`` (once; concurrent callers
        wait for the first one). Returns the snapshot's fs dir."""
        final = self.snapshot_dir(chain_id)
        with locked(self.locks / f"snap-{chain_id.hex}.lock"):
            if self.has_snapshot(chain_id):
                return final / "fs"
            self.snapshots.mkdir(parents=True, exist_ok=True)
            for stale in self.snapshots.glob(f".tmp-{chain_id.hex}-*"):  # a killed earlier unpack
                _rmtree(stale, ignore_errors=True)
            if final.exists():  # no meta: incomplete leftover, or not settled before a reboot
                _rmtree(final, ignore_errors=True)
            from .unpack import unpack_layer  # here: `dockyard run` reads the store, never unpacks

            tmp = self.snapshots / f".tmp-{chain_id.hex}-{os.getpid()}"
            (tmp / "fs").mkdir(parents=True)
            try:
                with open(self.blob_path(layer), "rb") as src:
                    kwargs = {"max_size": max_size} if max_size else {}
                    result = unpack_layer(src, tmp / "fs", diff_id, **kwargs)
                self._placed(tmp, final, {"diff_id": str(result.diff_id), "size": result.size,
                                          "content_size": content_size(tmp / "fs"), "layer": str(layer)})
            except BaseException:
                _rmtree(tmp, ignore_errors=True)
                raise
        return final / "fs"

    def adopt_snapshot(self, chain_id: Digest, fs_dir: Path, diff_id: Digest, size: int, layer: Digest) -> bool:
        """Make the finished directory ``fs_dir`` (overlay form, on this filesystem) the snapshot
        ``chain_id`` by renaming it: what `dockyard build` does with a step's upper dir instead
        of unpacking the layer it just wrote. False (``fs_dir`` left alone) if one exists."""
        final = self.snapshot_dir(chain_id)
        with locked(self.locks / f"snap-{chain_id.hex}.lock"):
            if self.has_snapshot(chain_id):
                return False
            self.snapshots.mkdir(parents=True, exist_ok=True)
            if final.exists():
                _rmtree(final, ignore_errors=True)
            tmp = self.snapshots / f".tmp-{chain_id.hex}-{os.getpid()}"
            tmp.mkdir()
            os.rename(fs_dir, tmp / "fs")
            self._placed(tmp, final, {"diff_id": str(diff_id), "size": size, "layer": str(layer)})
        return True

    def remove_snapshot(self, chain_id: Digest) -> None:
        with locked(self.locks / f"snap-{chain_id.hex}.lock"):
            final = self.snapshot_dir(chain_id)
            if not final.exists():
                return
            trash = self.snapshots / f".trash-{chain_id.hex}-{os.getpid()}"
            os.rename(final, trash)  # gone from view at once; the delete may take a while
            _rmtree(trash, ignore_errors=True)

    def remove_stale_temps(self) -> None:
        """Delete the temporary dirs of unpacks that were killed (``.tmp-<chain>-<pid>``; until
        now only the next unpack of that same layer removed them). One whose snapshot lock is
        held belongs to a live unpack and stays."""
        if not self.snapshots.is_dir():
            return
        for tmp in self.snapshots.glob(".tmp-*"):
            chain_hex = tmp.name[len(".tmp-"):].split("-", 1)[0]
            if len(chain_hex) != 64:
                continue
            fd = try_lock(self.locks / f"snap-{chain_hex}.lock")
            if fd is None:
                continue
            try:
                _rmtree(tmp, ignore_errors=True)
            finally:
                os.close(fd)

    def list_snapshots(self) -> list[Digest]:
        if not self.snapshots.is_dir():
            return []
        return [Digest("sha256", p.name) for p in self.snapshots.iterdir()
                if not p.name.startswith(".") and len(p.name) == 64]


_BOOT: list[str] = []


def boot_id() -> str:
    """This boot's id (the kernel's random boot_id, without dashes)."""
    if not _BOOT:
        with open("/proc/sys/kernel/random/boot_id") as f:
            _BOOT.append(f.read().strip().replace("-", ""))
    return _BOOT[0]


def _pending_name() -> str:
    return f"meta.{boot_id()}.json"


def snapshot_meta(snapshot_dir: Path) -> Path | None:
    """The meta file that makes ``snapshot_dir`` a usable snapshot, or None: meta.json once
    settled, meta.<this boot>.json before; one made in an earlier boot and never settled may
    have lost its files' data in a crash."""
    settled = snapshot_dir / "meta.json"
    if settled.is_file():
        return settled
    pending = snapshot_dir / _pending_name()
    return pending if pending.is_file() else None


def _syncfs(path: Path) -> None:
    import ctypes  # here: only a settle that has work loads it
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _rmtree(path, ignore_errors: bool = False) -> None:
    # shutil (with bz2, lzma, zlib) is imported only by the writers that need it, not by every
    # `dockyard run` that looks an image up.
    import shutil
    shutil.rmtree(path, ignore_errors=ignore_errors)


def content_size(root: Path) -> int:
    """What docker's ``images`` reports for a layer: the apparent size of everything in it but
    directories (symlinks count their target's length), each hardlinked inode once."""
    total, seen = 0, set()
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif st.st_size and st.st_ino not in seen:
                    if st.st_nlink > 1:
                        seen.add(st.st_ino)
                    total += st.st_size
    return total

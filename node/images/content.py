"""Bytes on the node: blobs by digest and layer snapshots by chain ID.

Layout under ``<root>/images``::

    content/blobs/sha256/<hex>        verified blobs: manifests, configs, compressed layers
    content/ingest/<hex>.part         a download in progress (resumed with Range)
    snapshots/<chain-hex>/fs/         one unpacked layer: an overlayfs lowerdir as is
    snapshots/<chain-hex>/meta.json   {"diff_id", "size"}: written before the rename
    snapshots/.tmp-<chain-hex>-<pid>  an unpack in progress (never a visible snapshot)
    locks/                            flock files: one per blob and snapshot being made
    gc.lock, images.lock              (store.py) sweep vs pulls; the records file

Blobs are hashed before they are renamed into place; snapshots are unpacked into a temp dir
and renamed when complete. Whoever holds a blob's or snapshot's lock makes it; a concurrent
puller waits on the lock, then finds it done. So an interrupted pull leaves at most an ingest
file (resumed next time) and a temp dir (removed by the next unpack of that layer).
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
        return (self.snapshot_dir(chain_id) / "meta.json").is_file()

    def snapshot_size(self, chain_id: Digest) -> int:
        """The layer's size as docker counts it (``content_size``); snapshots unpacked by an
        older version only know their tar size."""
        try:
            meta = json.loads((self.snapshot_dir(chain_id) / "meta.json").read_text())
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
            if final.exists():  # no meta.json: incomplete leftover of an older layout
                _rmtree(final, ignore_errors=True)
            from .unpack import unpack_layer  # here: `dockyard run` reads the store, never unpacks

            tmp = self.snapshots / f".tmp-{chain_id.hex}-{os.getpid()}"
            (tmp / "fs").mkdir(parents=True)
            try:
                with open(self.blob_path(layer), "rb") as src:
                    kwargs = {"max_size": max_size} if max_size else {}
                    result = unpack_layer(src, tmp / "fs", diff_id, **kwargs)
                (tmp / "meta.json").write_text(json.dumps({"diff_id": str(result.diff_id), "size": result.size,
                                                           "content_size": content_size(tmp / "fs"),
                                                           "layer": str(layer)}))
                os.rename(tmp, final)
                fsync_dir(self.snapshots)
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
            (tmp / "meta.json").write_text(json.dumps({"diff_id": str(diff_id), "size": size, "layer": str(layer)}))
            os.rename(tmp, final)
            fsync_dir(self.snapshots)
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

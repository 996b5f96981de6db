"""The filesystem storage driver: blobs and uploads as files in the tree drawn in layout.py.

Blocking file calls run in the default thread pool so the event loop keeps serving; appends are
gathered into ~1 MiB buffers so each trip to a worker thread does real work (hashing and writing
a buffer releases the GIL, so several uploads use several cores).
"""
from __future__ import annotations

import asyncio
import errno
import os
import secrets
import shutil
import time
from functools import partial
from typing import AsyncIterator

from oci.digest import ALGORITHMS, Digest

from .driver import (FULL, BlobInfo, BlobNotFound, ChunkHook, DigestMismatch, StorageFull, StorageUnavailable,
                     UploadNotFound)
from .layout import UPLOAD_ID_RE, Layout

BUFFER = 1 << 20


def storage_error(e: OSError) -> Exception:
    """The driver's error for an OSError that is not an answer ("no such file" is an answer:
    the callers handle it): StorageFull for no space, else StorageUnavailable."""
    if isinstance(e, (FileNotFoundError, FileExistsError)):
        return e
    why = e.strerror or type(e).__name__  # no path: the message reaches clients (the log has the cause)
    return StorageFull(f"storage is full ({why})") if e.errno in FULL else StorageUnavailable(f"storage failed ({why})")


def _driver_error(e: OSError) -> Exception:
    err = storage_error(e)
    return StorageUnavailable(f"storage failed ({e.strerror or type(e).__name__})") if err is e else err


def _checked(upload_id: str) -> str:
    if not UPLOAD_ID_RE.match(upload_id):
        raise ValueError(f"invalid upload id {upload_id!r}")
    return upload_id


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilesystemDriver:
    """Implements registry.storage.driver.StorageDriver on a local directory."""

    # A small blob PUT with its body in one request (POST + PUT, the common push of configs and
    # small layers) is written with one put (write, fsync, rename: one worker-thread hop)
    # instead of appending to the session file and committing it (five hops). The body is held
    # in memory, so this also bounds what one such request buffers.
    single_put_limit = 256 << 10

    def __init__(self, root: str, fsync: bool = True) -> None:
        self.layout = Layout(root)
        self.fsync = fsync
        self._uploads = str(self.layout.uploads)  # joined as str: pathlib was ~4 % of a push (profile)
        self._tmp = str(self.layout.tmp)
        self._blobs = str(self.layout.blobs)
        self._anonymous = hasattr(os, "O_TMPFILE")  # small puts as unnamed files (_write_anonymous)

    async def _run(self, fn, *args):
        try:
            return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args))
        except OSError as e:
            err = storage_error(e)
            if err is e:
                raise
            raise err from e

    async def open(self) -> None:
        await self._run(self.layout.ensure)
        await self._run(self._clean_tmp)

    async def close(self) -> None:
        return None

    def _clean_tmp(self) -> None:
        # Leftovers of writes interrupted by a crash; nothing refers to them.
        cutoff = time.time() - 3600
        for entry in os.scandir(self.layout.tmp):
            try:
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
            except OSError:
                pass

    # -- blobs --------------------------------------------------------------------------------
    async def stat(self, digest: Digest) -> int | None:
        try:
            st = await self._run(os.stat, self._blob_file(digest))
        except FileNotFoundError:
            return None
        return st.st_size

    def local_path(self, digest: Digest) -> str | None:
        return self._blob_file(digest)

    def _blob_file(self, digest: Digest) -> str:
        """``str(layout.blob_path(digest))`` without pathlib (a few % of a small push, profile)."""
        return f"{self._blobs}/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"

    async def read(self, digest: Digest, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        try:
            f = await self._run(open, self.layout.blob_path(digest), "rb")
        except FileNotFoundError:
            raise BlobNotFound(str(digest)) from None
        try:
            await self._run(f.seek, offset)
            remaining = length
            while remaining is None or remaining > 0:
                n = BUFFER if remaining is None else min(BUFFER, remaining)
                block = await self._run(f.read, n)
                if not block:
                    break
                if remaining is not None:
                    remaining -= len(block)
                yield block
        finally:
            await self._run(f.close)

    async def get(self, digest: Digest) -> bytes:
        def _read() -> bytes:
            with open(self._blob_file(digest), "rb") as f:
                return f.read()

        try:
            return await self._run(_read)
        except FileNotFoundError:
            raise BlobNotFound(str(digest)) from None

    def _write_new_file(self, dest: str, data: bytes, absent: bool = False) -> None:
        if self._anonymous and self._write_anonymous(dest, data):
            return
        tmp = os.path.join(self._tmp, secrets.token_hex(16))
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            if absent:
                self._install_absent(tmp, dest)
            else:
                self._install(tmp, dest)
        except BaseException:
            # A failed write (a full disk) leaves nothing behind, not a 0-byte file until the
            # next restart's clean-up (#13.9).
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def _write_anonymous(self, dest: str, data: bytes) -> bool:
        """Write a small new blob as an unnamed file in its own fan-out directory (O_TMPFILE),
        fsync it, then give it its name (linkat of /proc/self/fd/N) and fsync the directory:
        the order of a temp file renamed into place (bytes durable before the name, the name
        durable before the caller names the blob), without a temp name made and removed in
        tmp/ -- a directory every concurrent put dirtied, and which ext4 without a journal
        writes out with each new file's fsync (its parent's entry; PROFILE 33). A crash before
        the link leaves no file anywhere. False: no O_TMPFILE on this kernel or filesystem (or
        no /proc): the caller does it the old way, and so does every later put."""
        parent, name = dest.rsplit("/", 1)
        try:
            try:
                pfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except FileNotFoundError:
                os.makedirs(parent, exist_ok=True)
                pfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return False  # the old way reports it
        try:
            try:
                fd = os.open(".", os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC, 0o666, dir_fd=pfd)
            except OSError as e:
                if e.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                    self._anonymous = False
                    return False
                raise
            with open(fd, "wb") as f:  # closes fd; a failed write (a full disk) leaves nothing
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(fd)
                link = f"/proc/self/fd/{fd}"
                try:
                    try:
                        # linkat(AT_FDCWD, link, pfd, name, AT_SYMLINK_FOLLOW)
                        os.link(link, name, dst_dir_fd=pfd, follow_symlinks=True)
                    except FileExistsError:
                        # Content addressed: the same digest is the same bytes (a concurrent
                        # put of this blob won). Keep it and refresh its mtime, as _install
                        # does (its name is fsynced below all the same: that put may not have
                        # got there yet); if GC swept it a moment ago, link ours after all.
                        try:
                            os.utime(name, dir_fd=pfd)
                        except FileNotFoundError:
                            os.link(link, name, dst_dir_fd=pfd, follow_symlinks=True)
                except FileNotFoundError:
                    if not os.path.isdir("/proc/self/fd"):
                        self._anonymous = False  # no /proc: ours vanishes with its fd
                        return False
                    raise
            if self.fsync:
                os.fsync(pfd)
            return True
        finally:
            os.close(pfd)

    def _install(self, src: str, dest: str) -> None:
        """Atomically move a finished file into the blob tree (or drop it if already there)."""
        parent = os.path.dirname(dest)
        os.makedirs(parent, exist_ok=True)
        if os.path.exists(dest):
            # Content addressed: the same digest is the same bytes. Keep the old file, but
            # refresh its mtime so a concurrent GC's grace period protects it.
            try:
                os.utime(dest)
                os.unlink(src)
                return
            except FileNotFoundError:
                pass  # swept by GC a moment ago: install ours instead
        os.rename(src, dest)
        if self.fsync:
            _fsync_dir(parent)

    def _install_absent(self, src: str, dest: str) -> None:
        """``_install`` for a blob the caller just found missing (its utime failed): rename at
        once, and make the fan-out directory only when the rename says it is missing. A blob
        that appeared meanwhile is the same bytes (content addressed), and replacing it with a
        fresh copy keeps what ``_install`` keeps: the bytes, with a new mtime."""
        parent = os.path.dirname(dest)
        try:
            os.rename(src, dest)
        except FileNotFoundError:
            os.makedirs(parent, exist_ok=True)
            os.rename(src, dest)
        if self.fsync:
            _fsync_dir(parent)

    async def put(self, digest: Digest, data: bytes) -> None:
        actual = Digest.of(data, digest.algorithm)
        if actual != digest:
            raise DigestMismatch(digest, actual)
        await self._run(self._put, self._blob_file(digest), data)

    def put_now(self, digest: Digest, data: bytes) -> None:
        """``put`` as a plain blocking call any thread may make (the index chains it before the
        write that names the bytes: ``Database.write(before=)``): verify, then write or refresh.
        Errors are the driver's (storage_error), as ``put``'s."""
        actual = Digest.of(data, digest.algorithm)
        if actual != digest:
            raise DigestMismatch(digest, actual)
        try:
            self._put(self._blob_file(digest), data)
        except OSError as e:
            err = storage_error(e)
            if err is e:
                raise
            raise err from e

    # put() of bytes already stored only refreshes their mtime (as touch), in the same worker
    # call: a manifest PUT needs one thread hop instead of touch + put (lifecycle.hooks).
    put_refreshes_existing = True

    def _put(self, dest: str, data: bytes) -> None:
        try:
            os.utime(dest)  # content addressed: the same digest is the same bytes
            return
        except FileNotFoundError:
            pass
        self._write_new_file(dest, data, absent=True)

    async def touch(self, digest: Digest) -> None:
        try:
            await self._run(os.utime, self._blob_file(digest))
        except FileNotFoundError:
            raise BlobNotFound(str(digest)) from None

    async def delete(self, digest: Digest, older_than: float | None = None) -> bool:
        def _delete() -> bool:
            path = self.layout.blob_path(digest)
            try:
                # GC passes its cutoff: a blob touched since the scan is in use again.
                if older_than is not None and os.stat(path).st_mtime >= older_than:
                    return False
                os.unlink(path)
            except FileNotFoundError:
                return False
            return True

        return await self._run(_delete)

    def _scan_blobs(self) -> list[BlobInfo]:
        out: list[BlobInfo] = []
        for alg in ALGORITHMS:
            top = self.layout.blobs / alg
            if not top.is_dir():
                continue
            for fan in os.scandir(top):
                if not fan.is_dir():
                    continue
                for entry in os.scandir(fan.path):
                    try:
                        d = Digest.parse(f"{alg}:{entry.name}")
                        st = entry.stat()
                    except (ValueError, OSError):
                        continue
                    out.append(BlobInfo(d, st.st_size, st.st_mtime))
        return out

    async def iter_blobs(self) -> AsyncIterator[BlobInfo]:
        for info in await self._run(self._scan_blobs):
            yield info

    # -- uploads ------------------------------------------------------------------------------
    # The staging area's small steps as plain functions that any thread may call (``staging``
    # in registry/storage/uploads.py): the index runs them inside the thread call it makes
    # anyway (the session row's write, the row's read, the commit that deletes the row), so a
    # push does not pay a thread hop of its own for a mkdir, a stat or an rmdir. Errors are the
    # driver's (storage_error), never an OSError the index would take for its own failure.
    def create_upload_now(self, upload_id: str) -> None:
        d = os.path.join(self._uploads, _checked(upload_id))
        try:
            try:
                os.mkdir(d)  # the parent exists (Layout.ensure)
            except FileExistsError:
                pass  # ids are fresh (uuid4): this is a retried transaction's own earlier call
            os.close(os.open(os.path.join(d, "data"), os.O_WRONLY | os.O_CREAT, 0o644))
        except OSError as e:
            raise _driver_error(e) from e

    def upload_size_now(self, upload_id: str) -> int | None:
        try:
            return os.stat(os.path.join(self._uploads, _checked(upload_id), "data")).st_size
        except FileNotFoundError:
            return None
        except OSError as e:
            raise _driver_error(e) from e

    def delete_upload_now(self, upload_id: str) -> None:
        d = os.path.join(self._uploads, _checked(upload_id))
        # The staging area is a directory holding one file, "data": unlink + rmdir (2 syscalls)
        # instead of rmtree's ~10 (open, fstat, getdents x2, lstat, unlink, rmdir, close...),
        # in the writer thread after a push's naming commit (PROFILE 33). Anything else there
        # (the data file gone already, a stray entry) falls back to rmtree, as before.
        try:
            os.unlink(d + "/data")
            os.rmdir(d)
            return
        except OSError:
            pass
        shutil.rmtree(d, ignore_errors=True)

    async def create_upload(self, upload_id: str) -> None:
        await self._run(self.create_upload_now, upload_id)

    async def upload_size(self, upload_id: str) -> int | None:
        return await self._run(self.upload_size_now, upload_id)

    async def append_upload(self, upload_id: str, chunks: AsyncIterator[bytes], hook: ChunkHook | None = None) -> int:
        path = self.layout.upload_data(upload_id)
        try:
            f = await self._run(open, path, "r+b")
        except FileNotFoundError:
            raise UploadNotFound(upload_id) from None

        def _write(buf: bytes) -> None:
            if hook is not None:
                hook(buf)
            f.write(buf)

        try:
            await self._run(f.seek, 0, os.SEEK_END)
            pending: list[bytes] = []
            pending_size = 0
            # Double buffering: one buffer is hashed and written in a worker thread while the
            # next one is read from the network; at most two buffers are held.
            in_flight: asyncio.Future | None = None
            try:
                async for chunk in chunks:
                    pending.append(chunk)
                    pending_size += len(chunk)
                    if pending_size >= BUFFER:
                        buf = b"".join(pending)
                        pending, pending_size = [], 0
                        if in_flight is not None:
                            await in_flight
                        in_flight = asyncio.ensure_future(self._run(_write, buf))
            finally:
                if in_flight is not None:
                    await in_flight
                # Bytes that arrived before a broken stream are kept: the client learns the
                # session's size from the Range header and resumes from there.
                if pending:
                    await self._run(_write, b"".join(pending))
            return await self._run(f.tell)
        finally:
            await self._run(f.close)

    async def read_upload(self, upload_id: str) -> AsyncIterator[bytes]:
        try:
            f = await self._run(open, self.layout.upload_data(upload_id), "rb")
        except FileNotFoundError:
            raise UploadNotFound(upload_id) from None
        try:
            while block := await self._run(f.read, 4 * BUFFER):
                yield block
        finally:
            await self._run(f.close)

    async def commit_upload(self, upload_id: str, digest: Digest) -> int:
        def _commit() -> int:
            src = self.layout.upload_data(upload_id)
            try:
                fd = os.open(src, os.O_RDONLY)
            except FileNotFoundError:
                raise UploadNotFound(upload_id) from None
            try:
                size = os.fstat(fd).st_size
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            self._install(str(src), str(self.layout.blob_path(digest)))
            shutil.rmtree(self.layout.upload_dir(upload_id), ignore_errors=True)
            return size

        return await self._run(_commit)

    async def delete_upload(self, upload_id: str) -> None:
        await self._run(partial(shutil.rmtree, self.layout.upload_dir(upload_id), ignore_errors=True))

    def _scan_uploads(self) -> list[tuple[str, float]]:
        out = []
        for entry in os.scandir(self.layout.uploads):
            if not UPLOAD_ID_RE.match(entry.name):
                continue
            try:
                data = os.path.join(entry.path, "data")
                mtime = os.stat(data).st_mtime if os.path.exists(data) else entry.stat().st_mtime
            except OSError:
                continue
            out.append((entry.name, mtime))
        return out

    async def iter_uploads(self) -> AsyncIterator[tuple[str, float]]:
        for item in await self._run(self._scan_uploads):
            yield item

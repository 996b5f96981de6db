"""The file list of a layer, read from the stored blob as a stream: nothing is unpacked.

The blob is decompressed on the fly (gzip or zstd, told apart by their magic bytes; anything
else is read as a plain tar) and its tar headers are read with ``tarfile`` in stream mode, which
never writes a file: we only look at each header and skip the data. A tar cannot be entered in
the middle, so page N re-reads the entries before it; every request stops after
``MAX_SCAN_BYTES`` of decompressed data or ``MAX_SCAN_ENTRIES`` headers, whichever comes
first, and then says the listing was capped. The first page of a layer of 100,000 files reads
only its first few hundred headers.

Names in a tar are user input: they are decoded as UTF-8 (undecodable bytes become U+FFFD),
control characters are shown as ``\\xNN``, and the templates escape the rest.

The work runs in a thread: from the file itself when the storage is a filesystem, else from
the storage driver's async stream, one chunk at a time through the event loop.
"""
from __future__ import annotations

import asyncio
import gzip
import io
import re
import tarfile
from dataclasses import asdict, dataclass, field
from typing import Any, AsyncIterator, Callable, Iterator

from oci.digest import Digest

MAX_SCAN_BYTES = 256 * 1024 * 1024
MAX_SCAN_ENTRIES = 200_000
DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
TYPES = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file", tarfile.DIRTYPE: "dir",
         tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "char",
         tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo"}


class Capped(Exception):
    """The per-request work cap was reached."""


@dataclass
class FileEntry:
    path: str
    type: str
    size: int
    mode: str
    uid: int
    gid: int
    owner: str
    link: str | None = None
    layer: int | None = None  # in a merged tree: which layer (1-based) the entry comes from

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FileList:
    files: list[FileEntry] = field(default_factory=list)
    offset: int = 0
    next_offset: int | None = None
    complete: str = "yes"  # yes | no (more pages) | capped (the work cap stopped the scan)
    problem: str | None = None
    scanned: int = 0  # headers read

    def as_dict(self) -> dict[str, Any]:
        return {"files": [f.as_dict() for f in self.files], "offset": self.offset, "next_offset": self.next_offset,
                "complete": self.complete, "problem": self.problem}


def shown(text: str) -> str:
    """A tar name as text people can read: valid UTF-8, control characters made visible."""
    clean = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", clean)


def normal_path(name: str) -> str:
    """``./usr/bin/`` -> ``/usr/bin``: one spelling per path, so layers can be merged."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return "/" + "/".join(parts)


def entry_of(info: tarfile.TarInfo) -> FileEntry:
    path = shown(normal_path(info.name))
    base = path.rsplit("/", 1)[-1]
    kind = TYPES.get(info.type, "other")
    if base == ".wh..wh..opq":
        kind = "opaque"
    elif base.startswith(".wh."):
        kind = "whiteout"
    owner = f"{info.uname or info.uid}:{info.gname or info.gid}"
    link = shown(info.linkname) if info.type in (tarfile.SYMTYPE, tarfile.LNKTYPE) else None
    return FileEntry(path, kind, int(info.size) if kind == "file" else 0, f"{info.mode & 0o7777:04o}",
                     int(info.uid), int(info.gid), shown(owner), link)


class _Counted(io.RawIOBase):
    """A read-only stream that raises Capped once more than ``limit`` bytes came through."""

    def __init__(self, inner: Any, limit: int) -> None:
        self.inner, self.limit, self.count = inner, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.inner.read(len(buffer))
        self.count += len(data)
        if self.count > self.limit:
            raise Capped()
        buffer[: len(data)] = data
        return len(data)


def _decompressed(raw: io.BufferedReader) -> Any:
    head = raw.peek(4)[:4]
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if head == b"\x28\xb5\x2f\xfd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    return raw


def iter_entries(raw: io.BufferedReader, max_bytes: int = MAX_SCAN_BYTES) -> Iterator[FileEntry]:
    """Every entry of the tar in the (maybe compressed) stream; raises Capped, or ValueError
    for a blob that is not a tar."""
    counted = io.BufferedReader(_Counted(_decompressed(raw), max_bytes), 1 << 16)
    try:
        archive = tarfile.open(fileobj=counted, mode="r|", errorlevel=0)
    except tarfile.TarError as e:
        raise ValueError(f"not a tar archive: {e}") from None
    try:
        for info in archive:
            yield entry_of(info)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ValueError(f"the layer is damaged or not a tar: {e}") from None
    except Exception as e:  # zstandard.ZstdError and the like
        if isinstance(e, Capped):
            raise
        raise ValueError(f"the layer does not decompress: {e}") from None


def list_page(raw: io.BufferedReader, offset: int, limit: int, keep: Callable[[FileEntry], bool] | None = None,
              max_bytes: int = MAX_SCAN_BYTES, max_entries: int = MAX_SCAN_ENTRIES) -> FileList:
    out = FileList(offset=offset)
    seen = 0  # matching entries passed so far
    try:
        for entry in iter_entries(raw, max_bytes):
            out.scanned += 1
            if out.scanned > max_entries:
                raise Capped()
            if keep is not None and not keep(entry):
                continue
            if seen >= offset:
                if len(out.files) == limit:
                    out.next_offset, out.complete = offset + limit, "no"
                    return out
                out.files.append(entry)
            seen += 1
    except Capped:
        out.complete = "capped"
        out.next_offset = offset + len(out.files) if out.files else None
    except ValueError as e:
        out.problem = str(e)
    return out


class _AsyncSource(io.RawIOBase):
    """A blocking reader over the storage driver's async chunks (used from a worker thread)."""

    def __init__(self, chunks: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self.chunks, self.loop, self.rest = chunks, loop, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while not self.rest:
            try:
                self.rest = asyncio.run_coroutine_threadsafe(self.chunks.__anext__(), self.loop).result()
            except StopAsyncIteration:
                return 0
        n = min(len(buffer), len(self.rest))
        buffer[:n], self.rest = self.rest[:n], self.rest[n:]
        return n


async def scan(storage: Any, digest: str, work: Callable[[io.BufferedReader], Any]) -> Any:
    """Run ``work(reader)`` on the blob's bytes in a thread."""
    d = Digest.parse(digest)
    path = storage.local_path(d)
    if path is not None:
        def local() -> Any:
            with open(path, "rb") as f:
                return work(io.BufferedReader(f, 1 << 16) if not isinstance(f, io.BufferedReader) else f)
        return await asyncio.to_thread(local)
    chunks = storage.read(d)
    try:
        source = io.BufferedReader(_AsyncSource(chunks.__aiter__(), asyncio.get_running_loop()), 1 << 16)
        return await asyncio.to_thread(work, source)
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


async def list_layer(storage: Any, digest: str, offset: int = 0, limit: int = DEFAULT_LIMIT) -> FileList:
    offset, limit = max(0, offset), max(1, min(limit, MAX_LIMIT))
    return await scan(storage, digest, lambda raw: list_page(raw, offset, limit))

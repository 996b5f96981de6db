"""The build context: a local directory, read in place (streamed file by file, never loaded
whole), filtered by .dockerignore, and untrusted.

- A source path is taken relative to the context root (a leading ``/`` too); one that leaves it
  (``../x``) is refused, and so is one reached through a symlink whose target leaves it.
  Symlinks on the way to a source are followed inside the context (BuildKit follows them for
  the source itself); symlinks inside a copied directory are copied as symlinks.
- Globs (``*``, ``?``, ``[...]``) match one path component each, like Go's filepath.Match.
- What .dockerignore leaves out does not exist for COPY/ADD.

``checksum`` is the cache's view of sources: paths, types, modes, sizes, link targets and
content digests, never mtimes or owners (COPY sets its own owner).
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import stat
from pathlib import Path

from oci.record import record

from .dockerignore import IgnoreMatcher

GLOB_CHARS = "*?["


class ContextError(ValueError):
    pass


@record
class Source:
    rel: str            # context-relative path after symlinks were resolved ("" is the root)
    path: Path          # on the host
    st: os.stat_result  # lstat of ``path`` (a symlink source is resolved, so never a link)


class Context:
    def __init__(self, root: Path, ignore: IgnoreMatcher | None = None, what: str = "build context",
                 rootfs: bool = False) -> None:
        self.root = Path(os.path.realpath(root))
        self.ignore = ignore or IgnoreMatcher.empty()
        self.what = what
        # an image's root filesystem (COPY --from): absolute links point inside it, and a link
        # that climbs above "/" stays at "/", as in the image itself
        self.rootfs = rootfs
        self.digests = _NO_CACHE

    def _clean(self, src: str) -> str:
        cleaned = posixpath.normpath("/" + src) if src.startswith("/") else posixpath.normpath(src)
        if cleaned == ".." or cleaned.startswith("../"):
            raise ContextError(f"forbidden path outside the {self.what}: {src}")
        return cleaned.lstrip("/") if cleaned not in (".", "/") else ""

    def _resolve(self, rel: str, original: str) -> str:
        """``rel`` with every symlink on the way resolved inside the context."""
        parts = [p for p in rel.split("/") if p]
        done: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if not done and self.rootfs:
                    continue
                if not done:
                    raise ContextError(f"forbidden path outside the {self.what}: {original}")
                done.pop()
                continue
            if part == ".":
                continue
            host = os.path.join(self.root, *done, part)
            try:
                st = os.lstat(host)
            except FileNotFoundError:
                raise ContextError(f"{original}: not found in the {self.what}") from None
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > 40:
                    raise ContextError(f"{original}: too many levels of symbolic links")
                target = os.readlink(host)
                if target.startswith("/") and self.rootfs:
                    parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                    done = []
                    continue
                if target.startswith("/"):
                    raise ContextError(f"{original}: symlink {'/'.join(done + [part])} -> {target} leaves the "
                                       f"{self.what}")
                joined = posixpath.normpath(posixpath.join("/".join(done), target))
                if self.rootfs:
                    joined = posixpath.normpath("/" + joined).lstrip("/")
                if joined == ".." or joined.startswith("../"):
                    raise ContextError(f"{original}: symlink {'/'.join(done + [part])} -> {target} leaves the "
                                       f"{self.what}")
                parts = [p for p in joined.split("/") if p not in ("", ".")] + parts
                done = []
                continue
            done.append(part)
        return "/".join(done)

    def sources(self, src: str) -> list[Source]:
        """What one COPY/ADD source names: one entry, or the glob's matches in sorted order."""
        rel = self._clean(src)
        if any(c in rel for c in GLOB_CHARS):
            # a wildcard may match nothing (BuildKit's AllowEmptyWildcard); the caller
            # refuses a COPY that ends up with no source at all
            return [self._source(m, src) for m in self._glob(rel)]
        return [self._source(rel, src)]

    def _source(self, rel: str, original: str) -> Source:
        resolved = self._resolve(rel, original)
        if resolved and self.ignore.ignored(resolved) and not self._has_included_below(resolved):
            raise ContextError(f"{original}: not found in the {self.what} (excluded by .dockerignore)")
        path = self.root / resolved if resolved else self.root
        return Source(resolved, path, os.lstat(path))

    def _has_included_below(self, rel: str) -> bool:
        path = self.root / rel
        if not path.is_dir() or not self.ignore.may_include_below(rel):
            return False
        return any(True for _ in self.walk(Source(rel, path, os.lstat(path))))

    def _glob(self, pattern: str) -> list[str]:
        comps = pattern.split("/")
        current = [""]
        for i, comp in enumerate(comps):
            nxt = []
            for base in current:
                host = os.path.join(self.root, base) if base else str(self.root)
                if not any(c in comp for c in GLOB_CHARS):
                    cand = f"{base}/{comp}" if base else comp
                    if os.path.lexists(os.path.join(self.root, cand)):
                        nxt.append(cand)
                    continue
                try:
                    names = sorted(os.listdir(host))
                except (NotADirectoryError, FileNotFoundError):
                    continue
                for name in names:
                    if fnmatch.fnmatchcase(name, comp):
                        cand = f"{base}/{name}" if base else name
                        if not self.ignore.ignored(cand) or i < len(comps) - 1:
                            nxt.append(cand)
            current = nxt
        return [c for c in current if not self.ignore.ignored(c)]

    def walk(self, source: Source):
        """(relative path below the source, host path, lstat) of what a directory source holds,
        parents first, sorted; ignored entries are left out (and not descended into unless an
        exception could re-include something below)."""
        if not stat.S_ISDIR(source.st.st_mode):
            return

        def visit(rel_in_src: str, host: Path):
            for name in sorted(os.listdir(host)):
                sub = f"{rel_in_src}/{name}" if rel_in_src else name
                ctx_rel = f"{source.rel}/{sub}" if source.rel else sub
                child = host / name
                st = os.lstat(child)
                is_dir = stat.S_ISDIR(st.st_mode)
                if self.ignore.ignored(ctx_rel):
                    if is_dir and self.ignore.may_include_below(ctx_rel):
                        inner = list(visit(sub, child))
                        if inner:
                            yield sub, child, st
                            yield from inner
                    continue
                yield sub, child, st
                if is_dir:
                    yield from visit(sub, child)

        yield from visit("", source.path)


class DigestCache:
    """Content digests of context files by (device, inode, size, mtime, ctime): a file whose
    inode did not change is not read again on the next build (ctime moves on any write or
    metadata change, so a stale entry cannot survive). Kept in ROOT/build/cache/digests.json."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.entries: dict[str, list] = {}
        self.changed = False
        if path is not None:
            try:
                import json
                self.entries = json.loads(path.read_text())
            except (OSError, ValueError):
                self.entries = {}

    def digest(self, path: Path, st: os.stat_result) -> str:
        sig = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        key = str(path)
        hit = self.entries.get(key)
        if hit and hit[0] == sig:
            return hit[1]
        value = _file_digest(path)
        self.entries[key] = [sig, value]
        self.changed = True
        return value

    def save(self) -> None:
        if self.path is None or not self.changed:
            return
        import json
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(self.entries))
        os.replace(tmp, self.path)


_NO_CACHE = DigestCache()


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def entry_checksum(h, name: str, path: Path, st: os.stat_result, digests: DigestCache = _NO_CACHE) -> None:
    mode = st.st_mode
    h.update(f"{name}\0{stat.S_IFMT(mode):o}\0{stat.S_IMODE(mode):o}\0".encode("utf-8", "surrogateescape"))
    if stat.S_ISREG(mode):
        h.update(f"{st.st_size}\0{digests.digest(path, st)}\0".encode())
    elif stat.S_ISLNK(mode):
        h.update(os.readlink(path).encode("utf-8", "surrogateescape") + b"\0")


def checksum(ctx: Context, sources: list[Source]) -> str:
    """One digest over every source and, for directories, all they hold."""
    h = hashlib.sha256()
    for src in sources:
        entry_checksum(h, "/" + src.rel, src.path, src.st, ctx.digests)
        for sub, path, st in ctx.walk(src):
            entry_checksum(h, sub, path, st, ctx.digests)
    return h.hexdigest()

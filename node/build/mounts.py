"""``RUN --mount=...``: what BuildKit offers that can run here.

- ``type=cache,target=DIR[,id=ID][,mode=0755][,uid=0][,gid=0][,sharing=...][,readonly]``: a
  directory kept under ROOT/build/cache-mounts/ across builds (``dockyard builder prune`` drops
  it), never part of a layer;
- ``type=bind,target=DIR[,source=PATH][,from=STAGE|IMAGE][,rw]``: the context (or a stage's
  root filesystem) at DIR, read-only; ``rw`` gives a throwaway copy, as BuildKit does;
- ``type=tmpfs,target=DIR``: an empty tmpfs.
Secrets and ssh agents are refused with a clear line. Mount targets the image lacked are made
as mount points by the runtime; they are taken out of the upper dir again afterwards.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import shutil
from pathlib import Path

from oci.record import Factory, record


@record
class MountSpec:
    type: str
    target: str
    source: str = ""
    from_: str | None = None
    readonly: bool = True
    id: str = ""
    mode: int = 0o755
    uid: int = 0
    gid: int = 0
    options: dict = Factory(dict)

    @property
    def key(self) -> list:
        return [self.type, self.target, self.source, self.from_, self.readonly, self.id, self.mode, self.uid, self.gid]

    def remove_stub(self, upper: Path, lowers: list[Path]) -> None:
        """Drop the mount point (and the parents made for it) if the image did not have it."""
        rel = self.target.strip("/")
        while rel:
            path = upper / rel
            if any(os.path.lexists(os.path.join(d, rel)) for d in lowers):
                return
            try:
                if path.is_dir() and not path.is_symlink():
                    os.rmdir(path)
                elif path.is_file() and path.stat().st_size == 0:
                    path.unlink()
                else:
                    return
            except OSError:  # not empty: the step wrote there (outside the mount)
                return
            rel = posixpath.dirname(rel)


def parse_mount(spec: str, workdir: str) -> MountSpec:
    fields: dict[str, str] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        fields[key.strip().lower()] = value.strip() if sep else "true"
    kind = fields.pop("type", "bind")
    if kind in ("secret", "ssh"):
        raise ValueError(f"mount type {kind} is not supported by dockyard build")
    if kind not in ("bind", "cache", "tmpfs"):
        raise ValueError(f"unknown mount type {kind!r}")
    target = fields.pop("target", None) or fields.pop("dst", None) or fields.pop("destination", None)
    if not target:
        raise ValueError("mount needs a target")
    if not target.startswith("/"):
        target = posixpath.join(workdir or "/", target)
    target = posixpath.normpath(target)
    if target == "/":
        raise ValueError("cannot mount over /")
    m = MountSpec(kind, target)
    m.source = fields.pop("source", None) or fields.pop("src", None) or ""
    m.from_ = fields.pop("from", None)
    rw = fields.pop("rw", None) or fields.pop("readwrite", None)
    ro = fields.pop("ro", None) or fields.pop("readonly", None)
    m.readonly = (kind == "bind" and rw not in ("true", "1")) or ro in ("true", "1")
    m.id = fields.pop("id", "") or (target if kind == "cache" else "")
    try:
        if "mode" in fields:
            m.mode = int(fields.pop("mode"), 8)
        m.uid = int(fields.pop("uid", 0))
        m.gid = int(fields.pop("gid", 0))
    except ValueError:
        raise ValueError("mode, uid and gid must be numbers") from None
    fields.pop("sharing", None)
    fields.pop("size", None)
    if fields:
        raise ValueError(f"unknown mount option {sorted(fields)[0]!r}")
    return m


def _filtered_copy(ctx, src, dest: Path) -> Path:
    """``src`` without what the context's ignore rules exclude: hardlinks where the filesystem
    allows (no data copied), copies elsewhere."""
    import stat
    if not src.path.is_dir():
        shutil.copy2(src.path, dest)
        return dest
    dest.mkdir()
    for sub, path, st in ctx.walk(src):
        target = dest / sub
        if stat.S_ISDIR(st.st_mode):
            target.mkdir(mode=stat.S_IMODE(st.st_mode))
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(path), target)
        elif stat.S_ISREG(st.st_mode):
            try:
                os.link(path, target)
            except OSError:
                shutil.copy2(path, target)
    return dest


def cache_dir(root: Path, m: MountSpec) -> Path:
    return Path(root) / "build" / "cache-mounts" / hashlib.sha256(m.id.encode()).hexdigest()[:32]


@contextlib.contextmanager
def prepare_mounts(builder, state, mounts: list[MountSpec], scratch: Path, script: str | None):
    """The binds (host dir, target, readonly) a RUN needs, set up for the time of the step."""
    from .context import ContextError
    from .steps import StepFailed, mounted_view

    binds: list[tuple[str, str, bool]] = []
    with contextlib.ExitStack() as stack:
        if script is not None:
            pipes = scratch / "pipes"
            pipes.mkdir()
            (pipes / "script").write_text(script)
            os.chmod(pipes / "script", 0o755)
            binds.append((str(pipes), "/dev/pipes", True))
        for i, m in enumerate(mounts):
            if m.type == "cache":
                host = cache_dir(builder.root, m)
                if not host.is_dir():
                    host.mkdir(parents=True)
                    os.chmod(host, m.mode)
                    os.chown(host, m.uid, m.gid)
                binds.append((str(host), m.target, m.readonly))
            elif m.type == "tmpfs":
                host = scratch / f"tmpfs-{i}"
                host.mkdir()
                binds.append((str(host), m.target, False))
            else:
                if m.from_:
                    image = builder.source_image(state, m.from_)
                    view = stack.enter_context(mounted_view(image.layer_dirs, builder.work))
                    from .context import Context
                    ctx = Context(Path(view), rootfs=True, what=f"mount source {m.from_}")
                else:
                    ctx = builder.context
                try:
                    src = ctx.sources(m.source or ".")[0]
                except ContextError as e:
                    raise StepFailed(f"--mount source {m.source or '.'}: {e}") from None
                host = src.path
                if not m.readonly or (host.is_dir() and ctx.ignore.patterns):
                    # writes go to a copy that is thrown away; and what .dockerignore leaves out
                    # of the context is not there for a RUN either (BuildKit never sends it)
                    host = _filtered_copy(ctx, src, scratch / f"bind-{i}")
                binds.append((str(host), m.target, m.readonly))
        yield binds

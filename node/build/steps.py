"""The steps that make a layer: RUN (a container), COPY/ADD (written through an overlay) and
WORKDIR (a directory made when missing). Each returns its cache key parts and a ``make(upper)``
that fills an empty upper dir; the executor does the caching, the differ and the store.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
from pathlib import Path

from oci.record import record

from . import overlay
from .context import ContextError, checksum
from .copier import Copier, CopyError, Owner, _mkdirs
from .dockerfile import DockerfileError
from .instructions import CopyAdd, Run
from .words import WordError, expand


class BuildError(Exception):
    """The build failed: one line for the user (``Dockerfile:LINE: ...``) and, for a RUN, the
    last lines of its output."""

    def __init__(self, message: str, tail: list[str] | None = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.tail = tail or []
        self.exit_code = exit_code


class StepFailed(BuildError):
    """A step that ran and failed (a RUN's non-zero exit, a COPY source missing...); the
    executor prefixes the instruction's line."""


@record
class Prepared:
    display: str
    key_parts: list
    created_by: str
    make: object  # callable(upper: Path, step) -> None
    cleanup: object = None  # callable() -> None, after make or a cache hit


def _x(builder, c, word: str, env: dict) -> str:
    try:
        return expand(word, env, builder.escape)
    except WordError as e:
        raise DockerfileError(c.line, str(e), builder.name) from None


def resolve_path(workdir: str, path: str) -> str:
    if not path.startswith("/"):
        path = posixpath.join(workdir or "/", path)
    keep_slash = path.endswith("/") or path.endswith("/.")
    cleaned = posixpath.normpath(path)
    return cleaned + ("/" if keep_slash and cleaned != "/" else "")


# -- WORKDIR ------------------------------------------------------------------------------------

def workdir(builder, state, path: str) -> Prepared:
    user = state.image.config.get("User") or ""

    def make(upper: Path, step) -> None:
        with builder.mounted(state, upper) as merged:
            owner = Owner(*builder.owner_of(merged, user)) if user else Owner()
            _mkdirs(merged, path, owner, [])
    return Prepared(f"WORKDIR {path}", ["workdir", path, user], f"WORKDIR {path}", make)


# -- RUN ----------------------------------------------------------------------------------------

def run(builder, state, c: Run) -> Prepared:
    cfg = state.image.config
    shell = list(cfg.get("Shell") or ["/bin/sh", "-c"])
    script_file = None
    if c.heredocs and c.shell_form and c.command.strip() == _heredoc_token(c.command):
        body = c.heredocs[0].content  # not expanded here: the shell does it, as with BuildKit
        if body.startswith("#!"):
            script_file = body
            argv = ["/dev/pipes/script"]
        else:
            argv = shell + [body]
    elif c.shell_form:
        text = c.command
        for doc in c.heredocs:  # the shell reads its heredocs itself
            text += "\n" + doc.content + doc.name
        argv = shell + [text]
    else:
        argv = list(c.command)
    args = state.visible_args()
    env = dict(args)
    env.update(state.image.env())
    env_list = [f"{k}={v}" for k, v in env.items()]
    network = c.network if c.network not in (None, "default") else builder.network
    mounts = [builder.parse_mount(c, state, _x(builder, c, m, state.env())) for m in c.mounts]
    user = cfg.get("User") or ""
    wd = cfg.get("WorkingDir") or "/"
    prefix = f"|{len(args)} " + " ".join(f"{k}={v}" for k, v in sorted(args.items())) + " " if args else ""
    shown = (" ".join(c.inst.flags) + " " if c.inst.flags else "") + (c.inst.args if c.shell_form else str(c.command))
    created_by = f"RUN {prefix}{' '.join(argv)} # buildkit"
    key = ["run", argv, sorted(env_list), user, wd, network, [m.key for m in mounts], script_file or ""]

    def make(upper: Path, step) -> None:
        builder.run_container(state, argv, env_list, user, wd, network, mounts, script_file, upper, step)
    return Prepared(f"RUN {shown}", key, created_by, make)


def _heredoc_token(text: str) -> str:
    return text.strip() if text.strip().startswith("<<") and " " not in text.strip() else "\0"


# -- COPY / ADD ---------------------------------------------------------------------------------

def _is_url(src: str) -> bool:
    return src.startswith("http://") or src.startswith("https://")


def copy(builder, state, c: CopyAdd) -> Prepared:
    env = state.env()
    cfg = state.image.config
    dest_raw = _x(builder, c, c.dest, env)
    dest = resolve_path(cfg.get("WorkingDir") or "/", dest_raw)
    dest_is_dir = dest.endswith("/") or dest_raw in (".", "./") or len(c.sources) > 1
    heredocs = {f"<<{d.name}": d for d in c.heredocs}
    heredocs.update({f"<<-{d.name}": d for d in c.heredocs})
    heredocs.update({f'<<"{d.name}"': d for d in c.heredocs})
    heredocs.update({f"<<'{d.name}'": d for d in c.heredocs})
    chown = _x(builder, c, c.chown, env) if c.chown else None
    source_ctx, from_id, release = builder.copy_context(state, c)
    plan: list[tuple[str, object]] = []   # ("heredoc", doc) | ("url", url) | ("src", Source)
    h = hashlib.sha256()
    try:
        for raw in c.sources:
            if raw in heredocs:
                doc = heredocs[raw]
                content = _x(builder, c, doc.content, env) if doc.expand else doc.content
                plan.append(("heredoc", (doc.name, content)))
                h.update(b"heredoc\0" + content.encode())
                continue
            src = _x(builder, c, raw, env)
            if c.is_add and _is_url(src) and not c.source_stage:
                plan.append(("url", src))
                h.update(f"url\0{src}\0{c.checksum or ''}".encode())
                continue
            try:
                found = source_ctx.sources(src)
            except ContextError as e:
                raise StepFailed(f"{c.inst.cmd.upper()} {src}: {e}") from None
            except OSError as e:
                raise StepFailed(f"{c.inst.cmd.upper()} {src}: {e.strerror}") from None
            if len(found) > 1 or any(ch in src for ch in "*?["):
                dest_is_dir = dest_is_dir or len(found) > 1
            plan.extend(("src", s) for s in found)
            h.update(checksum(source_ctx, found).encode())
        if not plan:
            raise StepFailed(f"{c.inst.cmd.upper()}: no source files were specified "
                             f"({' '.join(c.sources)} matches nothing in the {source_ctx.what})")
    except BaseException:
        release()
        raise
    flags = " ".join(c.inst.flags)
    created_by = f"{c.inst.cmd.upper()} {flags + ' ' if flags else ''}{' '.join(c.sources)} {c.dest} # buildkit"
    chmod = int(c.chmod, 8) if c.chmod else None
    key = [c.inst.cmd, c.sources, dest, dest_is_dir, chown, chmod, from_id, h.hexdigest()]

    def make(upper: Path, step) -> None:
        ctx = source_ctx
        try:
            with builder.mounted(state, upper) as merged:
                owner = Owner(*builder.owner_of(merged, chown)) if chown else None
                copier = Copier(merged, owner, chmod)
                for kind, item in plan:
                    if kind == "heredoc":
                        name, content = item
                        copier.write_file(dest, dest_is_dir, name, content.encode(), 0o644, builder.epoch)
                    elif kind == "url":
                        name, data, mtime = builder.fetch(item, c.checksum)
                        copier.write_file(dest, dest_is_dir, name, data, 0o600, mtime)
                    else:
                        copier.copy_source(ctx, item, dest, dest_is_dir, extract=c.is_add and not c.source_stage)
        except (CopyError, ContextError) as e:
            raise StepFailed(f"{c.inst.cmd.upper()}: {e}") from None
    display = f"{c.inst.cmd.upper()} {flags + ' ' if flags else ''}{' '.join(c.sources)} {c.dest}"
    return Prepared(display, key, created_by, make, release)


@contextlib.contextmanager
def mounted_view(lowers: list[Path], scratch: Path):
    """A read-only merged view of ``lowers`` (for COPY --from and RUN --mount from=)."""
    if not lowers:
        empty = scratch / "empty"
        empty.mkdir(parents=True, exist_ok=True)
        yield empty
        return
    target = scratch / f"view-{os.urandom(4).hex()}"
    overlay.mount_readonly(target, lowers, scratch)
    try:
        yield target
    finally:
        overlay.unmount(target)
        with contextlib.suppress(OSError):
            target.rmdir()


__all__ = ["Prepared", "StepFailed", "copy", "run", "workdir", "resolve_path", "mounted_view"]

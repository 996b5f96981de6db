"""The build, step by step: parse, plan the stages the target needs, run each stage's steps
with the cache, write the image and only then move its tags.

Work files live under ROOT/build/tmp/<build>/ (upper dirs, views, blobs being written) and go
with the build, also on Ctrl-C. A failed step leaves nothing in the store that a record names:
blobs and snapshots are committed only once complete, and tags move only at the very end.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

from oci.digest import Digest
from oci.manifest import chain_ids
from oci.record import Factory, record

from . import overlay
from .cache import BuildCache, step_key
from .context import Context, DigestCache
from .dockerfile import DockerfileError, parse
from .dockerignore import read_ignore_file
from .image import StageImage, fill_times, iso_time, store_image
from .instructions import Arg, Run, interpret_all
from .layers import commit, is_empty_dir, write_layer
from .metadata import Applier
from .services import StepServices
from .stages import Stage, base_reference, find_stage, plan
from .steps import BuildError, Prepared, StepFailed
from .steps import copy as copy_step
from .steps import run as run_step
from .steps import workdir as workdir_step
from .words import WordError, expand

LAYER_STEPS = ("run", "copy", "add", "workdir")


@record
class BuildOptions:
    context: Path
    dockerfile: Path | None = None
    tags: list[str] = Factory(list)
    build_args: dict[str, str] = Factory(dict)
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    network: str = "bridge"
    labels: dict[str, str] = Factory(dict)
    platform: str | None = None
    epoch: int | None = None


def host_platform():
    """This machine's platform, as pull chooses it (node.images.pull imports aiohttp: a cached
    build that pulls nothing should not pay ~0.3 s for it)."""
    from oci.manifest import Platform
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    return Platform("linux", arch, "v8" if arch == "arm64" else None)


class StageState:
    def __init__(self, stage: Stage, image: StageImage, global_args: dict[str, str | None]) -> None:
        self.stage = stage
        self.image = image
        self.args: dict[str, str | None] = {}
        self.global_args = global_args
        self.applier: Applier | None = None
        # history times without SOURCE_DATE_EPOCH: a metadata step is dated like the layer
        # step before it (whose time the cache keeps), so a fully cached build is the same image
        self.last_created: str | None = image.history[-1].get("created") if image.history else None

    def visible_args(self) -> dict[str, str]:
        return {k: v for k, v in self.args.items() if v is not None}

    def env(self) -> dict[str, str]:
        """Expansion variables: ARGs in scope, then ENV over them."""
        out = self.visible_args()
        out.update(self.image.env())
        return out


class Builder(StepServices):
    def __init__(self, root: Path, opts: BuildOptions, progress) -> None:
        from node.images.store import ImageStore
        from oci.manifest import Platform

        self.root = Path(root)
        self.opts = opts
        self.progress = progress
        self.store = ImageStore(self.root)
        self.cache = BuildCache(self.root)
        self.epoch = opts.epoch
        self.network = opts.network or "bridge"
        self.platform = Platform.parse(opts.platform) if opts.platform else host_platform()
        self.work = self.root / "build" / "tmp" / f"{os.getpid()}-{os.urandom(4).hex()}"
        self.results: dict[int, StageState] = {}
        self.name = "Dockerfile"
        self.escape = "\\"
        self.used_args: set[str] = set()
        self._count = 0

    # -- entry point -------------------------------------------------------------------------

    def build(self):
        self.store.content.settle()  # earlier commands' snapshots (node/images/content.py)
        opts = self.opts
        context = Path(opts.context)
        if not context.is_dir():
            raise BuildError(f"unable to prepare context: path {str(context)!r} not found")
        dockerfile = Path(opts.dockerfile) if opts.dockerfile else context / "Dockerfile"
        if opts.dockerfile and not dockerfile.is_absolute() and not dockerfile.exists():
            dockerfile = context / opts.dockerfile
        self.name = dockerfile.name
        step = self.progress.step(f"[internal] load build definition from {dockerfile.name}")
        try:
            text = dockerfile.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError as e:
            raise BuildError(f"failed to read dockerfile: open {dockerfile}: {e.strerror}") from None
        parsed = parse(text, self.name)
        self.escape = parsed.escape
        commands = interpret_all(parsed, self.name)
        step.done()
        for note in parsed.notes:
            self.progress.note(note)
        step = self.progress.step("[internal] load .dockerignore")
        self.context = Context(context, read_ignore_file(context, dockerfile))
        self.context.digests = DigestCache(self.root / "build" / "cache" / "digests.json")
        step.done()
        global_args = self._global_args(commands)
        the_plan = plan(commands, opts.target, {k: v for k, v in global_args.items() if v is not None}, self.name)
        self.global_args, self.plan = global_args, the_plan
        try:
            with self.store.writing():
                for stage in the_plan.order:
                    self.results[stage.index] = self._stage(stage)
                final = self.results[the_plan.target.index].image
                return self._export(final)
        finally:
            self._cleanup()
            with contextlib.suppress(OSError):
                self.context.digests.save()

    def unused_args(self) -> list[str]:
        return sorted(k for k in self.opts.build_args if k not in self.used_args and k not in _PREDEFINED)

    def _cleanup(self) -> None:
        if not self.work.exists():  # a fully cached build made no work dir
            return
        for dirpath, _dirs, _files in os.walk(self.work, topdown=False):
            if os.path.ismount(dirpath):
                overlay.unmount(Path(dirpath))
        shutil.rmtree(self.work, ignore_errors=True)

    # -- args ---------------------------------------------------------------------------------

    def _predefined(self) -> dict[str, str]:
        p = self.platform
        plat = f"{p.os}/{p.architecture}" + (f"/{p.variant}" if p.variant else "")
        return {"TARGETPLATFORM": plat, "TARGETOS": p.os, "TARGETARCH": p.architecture,
                "TARGETVARIANT": p.variant or "", "BUILDPLATFORM": plat, "BUILDOS": p.os,
                "BUILDARCH": p.architecture, "BUILDVARIANT": p.variant or ""}

    def _global_args(self, commands) -> dict[str, str | None]:
        values: dict[str, str | None] = dict(self._predefined())
        for c in commands:
            if not isinstance(c, Arg):
                break
            for name, default in c.args:
                if name in self.opts.build_args:
                    values[name] = self.opts.build_args[name]
                    self.used_args.add(name)
                elif default is not None:
                    values[name] = self._expand(c, default, {k: v for k, v in values.items() if v is not None})
                else:
                    values.setdefault(name, None)
        return values

    def _expand(self, c, word: str, env: dict[str, str]) -> str:
        try:
            return expand(word, env, self.escape)
        except WordError as e:
            raise DockerfileError(c.line, str(e), self.name) from None

    # -- stages -------------------------------------------------------------------------------

    def _label(self, stage: Stage, i: int, n: int) -> str:
        if len(self.plan.stages) == 1:
            return f"[{i}/{n}]"
        return f"[{stage.label} {i}/{n}]"

    def _stage(self, stage: Stage) -> StageState:
        global_env = {k: v for k, v in self.global_args.items() if v is not None}
        ref = base_reference(stage, global_env, self.name)
        total = 1 + sum(1 for c in stage.commands if c.inst.cmd in LAYER_STEPS)
        step = self.progress.step(f"{self._label(stage, 1, total)} FROM {ref}")  # (+ triggers: rare)
        dep = find_stage(self.plan.stages, ref, stage.index)
        if dep is not None and dep.name:
            image = self.results[dep.index].image.clone()
            step.done()
        elif ref.lower() == "scratch":
            image = StageImage.scratch(self.platform)
            image.key = step_key("scratch", str(self.platform))
            step.done()
        else:
            platform = self._expand(stage.base, stage.base.platform, global_env) if stage.base.platform else None
            image = self._base_image(ref, platform, stage)  # --platform=$BUILDPLATFORM works
            step.done()
        state = StageState(stage, image, self.global_args)
        state.applier = Applier(image, state.env, self.name)
        state.applier.escape = self.escape
        commands = self._triggers(image, stage) + list(stage.commands)
        total = 1 + sum(1 for c in commands if c.inst.cmd in LAYER_STEPS)
        i = 1
        for c in commands:
            if c.inst.cmd in LAYER_STEPS:
                i += 1
            try:
                self._dispatch(state, c, self._label(stage, i, total))
            except StepFailed as e:
                raise BuildError(f"{self.name}:{c.line}: {e}", e.tail) from None
        return state

    def _triggers(self, image: StageImage, stage: Stage) -> list:
        """The base's ONBUILD triggers, run right after FROM (and dropped from the new image),
        as docker does; their errors point at the FROM line."""
        triggers = image.config.pop("OnBuild", None) or []
        commands = []
        for text in triggers:
            try:
                parsed = parse(text + "\n", self.name)
                for inst in parsed.instructions:
                    inst.line = inst.end_line = stage.base.line
                    if inst.cmd in ("from", "onbuild", "maintainer"):
                        raise DockerfileError(stage.base.line, f"{inst.cmd.upper()} isn't allowed as an ONBUILD trigger",
                                              self.name)
                commands += interpret_all(parsed, self.name)
            except DockerfileError as e:
                raise DockerfileError(stage.base.line, f"ONBUILD trigger {text!r} of the base image: {e.reason}",
                                      self.name) from None
        return commands

    # -- instructions -------------------------------------------------------------------------

    def _dispatch(self, state: StageState, c, label: str) -> None:
        cmd = c.inst.cmd
        if cmd == "arg":
            self._arg(state, c)
            return
        if cmd in ("run", "copy", "add"):
            prepared = run_step(self, state, c) if isinstance(c, Run) else copy_step(self, state, c)
            self._layer_step(state, label, prepared)
            return
        if cmd == "workdir":
            path = self._expand(c, c.text.strip(), state.env())
            from .steps import resolve_path
            wd = resolve_path(state.image.config.get("WorkingDir") or "/", path).rstrip("/") or "/"
            state.image.config["WorkingDir"] = wd
            if wd == "/":
                state.image.record(f"WORKDIR {wd}", self._created(state), empty_layer=True)
            else:
                self._layer_step(state, label, workdir_step(self, state, wd))
            return
        created_by = state.applier.apply(c)
        state.image.record(created_by, self._created(state), empty_layer=True)

    def _arg(self, state: StageState, c: Arg) -> None:
        parts = []
        for name, default in c.args:
            if name in self.opts.build_args:
                value = self.opts.build_args[name]
                self.used_args.add(name)
            elif default is not None:
                value = self._expand(c, default, state.env())
            elif name in self.global_args:
                value = self.global_args[name]
            else:
                value = None
            state.args[name] = value
            parts.append(f"{name}={default}" if default is not None else name)
        state.image.record("ARG " + " ".join(parts), self._created(state), empty_layer=True)

    def _created(self, state: StageState | None = None) -> str | None:
        """A history time. For a metadata step (``state`` given) with no layer step before it
        to be dated by, None: the export dates it like the next layer step (fill_times)."""
        if self.epoch is not None:
            return iso_time(self.epoch)
        if state is not None:
            return state.last_created
        return iso_time(time.time())

    # -- layers -------------------------------------------------------------------------------

    def _layer_step(self, state: StageState, label: str, prepared: Prepared) -> None:
        try:
            self._layer_step_inner(state, label, prepared)
        finally:
            if prepared.cleanup:
                prepared.cleanup()

    def _layer_step_inner(self, state: StageState, label: str, prepared: Prepared) -> None:
        image = state.image
        parent_chain = str(chain_ids(image.diff_ids)[-1]) if image.layers else image.key
        key = step_key(parent_chain, str(self.platform), *prepared.key_parts)
        step = self.progress.step(f"{label} {prepared.display}")
        rec = None if self.opts.no_cache else self.cache.get(key, self.store.content)
        if rec is not None:
            self._reuse(image, rec)
            created = self._created() if self.epoch is not None else rec.get("created") or self._created()
            state.last_created = created
            image.record(prepared.created_by, created, empty_layer=rec.get("empty", False))
            step.cached()
            return
        self._count += 1
        scratch = self.work / f"step-{self._count}"
        upper = scratch / "upper"
        scratch.mkdir(parents=True)
        try:
            prepared.make(upper, step)
        except StepFailed as e:
            step.error(str(e))
            raise
        created = self._created()
        state.last_created = created
        if not upper.exists() or is_empty_dir(upper):
            self.cache.put(key, {"empty": True, "created": created, "digest": "", "chain": ""})
            image.record(prepared.created_by, created, empty_layer=True)
            step.done()
            shutil.rmtree(scratch, ignore_errors=True)
            return
        blob = scratch / "layer.tar.gz"
        layer = write_layer(upper, blob, self.epoch)
        chain = commit(self.store.content, upper, blob, layer, image.diff_ids)
        entry = {"digest": str(layer.digest), "size": layer.size, "media_type": layer.media_type,
                 "diff_id": str(layer.diff_id)}
        image.add_layer(entry, self.store.content.snapshot_dir(chain) / "fs")
        self.cache.put(key, {**entry, "tar_size": layer.tar_size, "chain": str(chain), "created": created,
                             "created_by": prepared.created_by})
        image.record(prepared.created_by, created, empty_layer=False)
        step.done()
        shutil.rmtree(scratch, ignore_errors=True)

    def _reuse(self, image: StageImage, rec: dict) -> None:
        if rec.get("empty"):
            return
        diff_id = Digest.parse(rec["diff_id"])
        chain = chain_ids([*image.diff_ids, diff_id])[-1]
        content = self.store.content
        if not content.has_snapshot(chain):
            content.unpack(Digest.parse(rec["digest"]), diff_id, chain)
        entry = {k: rec[k] for k in ("digest", "size", "media_type", "diff_id")}
        image.add_layer(entry, content.snapshot_dir(chain) / "fs")

    # -- export -------------------------------------------------------------------------------

    def _export(self, image: StageImage):
        step = self.progress.step("exporting to image")
        if self.opts.labels:
            labels = dict(image.config.get("Labels") or {})
            labels.update(self.opts.labels)
            image.config["Labels"] = labels
        fill_times(image.history, iso_time(time.time()))
        created = image.history[-1]["created"] if image.history else self._created()
        result = store_image(self.store, image, created, self.opts.tags)
        step.output(f"writing image {result.id} done\n".encode())
        for tag in self.opts.tags:
            step.output(f"naming to {tag} done\n".encode())
        step.done()
        return result


_PREDEFINED = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
               "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}

__all__ = ["BuildError", "BuildOptions", "Builder", "host_platform"]

"""What the steps (steps.py, mounts.py) ask of the build they run in: the stage's rootfs as a
mounted overlay, owners looked up in it, the sources of COPY --from, RUN containers through the
engine adapter (runner.py), URL fetches. A mixin of executor.Builder, kept apart so each module
has one job: the executor sequences, these serve.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from oci.manifest import chain_ids

from . import overlay
from .context import Context
from .dockerfile import DockerfileError
from .image import StageImage
from .instructions import CopyAdd, Run
from .layers import clean_runtime_leftovers
from .mounts import MountSpec, parse_mount
from .stages import Stage, find_stage
from .cache import step_key
from .steps import BuildError, StepFailed, mounted_view


class StepServices:
    @contextlib.contextmanager
    def mounted(self, state: StageState, upper: Path):
        """The stage's rootfs with ``upper`` collecting the changes (COPY, WORKDIR)."""
        scratch = upper.parent
        merged = scratch / "merged"
        overlay.mount(merged, state.image.layer_dirs, upper, scratch / "work", scratch)
        try:
            yield str(merged)
        finally:
            overlay.unmount(merged)

    def owner_of(self, rootfs: str, spec: str) -> tuple[int, int]:
        user, _, group = spec.partition(":")
        if user.isdigit() and (not group or group.isdigit()):
            return int(user), int(group or user)  # docker: a bare uid is also the gid
        from . import runner  # (threading, signal: only for builds that need them)
        try:
            return runner.user_ids(rootfs, spec)
        except runner.RunFailed as e:
            raise StepFailed(f"--chown={spec}: {e}") from None

    def source_image(self, state: StageState, ref: str) -> StageImage:
        """A stage (by name or index) or an image, for COPY --from and RUN --mount from=."""
        dep = find_stage(self.plan.stages, ref, state.stage.index)
        if dep is not None:
            return self.results[dep.index].image
        return self._base_image(ref, None, state.stage)

    def copy_context(self, state: StageState, c: CopyAdd):
        """(Context to read sources from, its identity for the cache key, release callback)."""
        if not c.source_stage:
            return self.context, "context", lambda: None
        ref = self._expand(c, c.source_stage, state.env())
        image = self.source_image(state, ref)
        identity = str(chain_ids(image.diff_ids)[-1]) if image.layers else "empty"
        stack = contextlib.ExitStack()
        view = stack.enter_context(mounted_view(image.layer_dirs, self.work))
        return Context(Path(view), what=f"source {ref}", rootfs=True), identity, stack.close

    def parse_mount(self, c: Run, state: StageState, spec: str) -> MountSpec:
        try:
            return parse_mount(spec, state.image.config.get("WorkingDir") or "/")
        except ValueError as e:
            raise DockerfileError(c.line, f"--mount={spec}: {e}", self.name) from None

    def run_container(self, state, argv, env, user, workdir, network, mounts, script, upper: Path, step) -> None:
        from . import runner
        from .mounts import prepare_mounts
        scratch = upper.parent
        lowers = list(state.image.layer_dirs)
        with prepare_mounts(self, state, mounts, scratch, script) as binds:
            spec = runner.RunSpec(argv=argv, env=env, user=user, workdir=workdir, network=network, binds=binds)
            try:
                code = runner.run_step(self.root, lowers, spec, upper, scratch,
                                       on_output=lambda stream, data: step.output(data))
            except runner.RunFailed as e:
                raise StepFailed(f"RUN: {e}", list(step.tail)) from None
        if code != 0:
            shown = " ".join(argv)
            raise StepFailed(f'process "{shown}" did not complete successfully: exit code: {code}',
                             list(step.tail), exit_code=code)
        if upper.exists():
            clean_runtime_leftovers(upper, lowers)
            for m in mounts:
                m.remove_stub(upper, lowers)

    def fetch(self, url: str, checksum: str | None):
        from .fetch import fetch_url
        try:
            return fetch_url(url, checksum)
        except ValueError as e:
            raise StepFailed(str(e)) from None

    def _base_image(self, ref: str, platform: str | None, stage: Stage) -> StageImage:
        from node.images.errors import ImageError
        try:
            if self.opts.pull or not self.store.exists(ref):
                from node.images.pull import pull_image  # aiohttp: only when there is a pull
                step = self.progress.step(f"[internal] load metadata for {ref}")
                try:
                    pull_image(self.root, ref, platform=platform or self.opts.platform, out=_StepWriter(step))
                except BaseException:
                    step.error(f"pulling {ref} failed")
                    raise
                step.done()
            found = self.store.get(ref)
        except ImageError as e:
            raise BuildError(f"{self.name}:{stage.base.line}: FROM {ref}: {e}") from None
        image = StageImage.from_config(found.config.raw, found.layers, found.layer_dirs(), found.id)
        chain = found.chain_ids[-1] if found.chain_ids else None
        image.key = step_key("image", str(chain) if chain else "empty")
        return image


class _StepWriter:
    """A text stream for `pull`'s lines: each becomes the step's output (never a terminal)."""

    def __init__(self, step) -> None:
        self.step = step

    def write(self, text: str) -> int:
        self.step.output(text.encode())
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

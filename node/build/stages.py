"""Stages and the plan: which stages the target needs, in which order (BuildKit builds only those).

A stage starts at each FROM. Only ARG may come before the first FROM (the global ARGs, visible
to FROM lines and, once re-declared, inside a stage). A stage depends on another through
``FROM <stage>``, ``COPY --from=<stage or index>`` and ``RUN --mount=...,from=<stage>``.
"""
from __future__ import annotations

from oci.record import Factory, record

from .dockerfile import DockerfileError
from .instructions import Arg, Command, CopyAdd, From, Run
from .words import WordError, expand


@record
class Stage:
    index: int
    base: From
    commands: list[Command] = Factory(list)

    @property
    def name(self) -> str | None:
        return self.base.name

    @property
    def label(self) -> str:
        """How progress names it: its AS name, else stage-N (BuildKit's words)."""
        return self.name or f"stage-{self.index}"


@record
class Plan:
    global_args: list[Arg]
    stages: list[Stage]         # every stage of the file
    order: list[Stage]          # the ones to build, dependencies first, the target last
    target: Stage


def split_stages(commands: list[Command], name: str = "Dockerfile") -> tuple[list[Arg], list[Stage]]:
    global_args: list[Arg] = []
    stages: list[Stage] = []
    for c in commands:
        if isinstance(c, From):
            stages.append(Stage(len(stages), c))
        elif not stages:
            if not isinstance(c, Arg):
                raise DockerfileError(c.line, "no build stage in current context (the first instruction "
                                      "must be FROM, after optional ARGs)", name)
            global_args.append(c)
        else:
            stages[-1].commands.append(c)
    if not stages:
        raise DockerfileError(max([a.line for a in global_args] or [1]), "the Dockerfile has no FROM instruction", name)
    seen: dict[str, int] = {}
    for s in stages:
        if s.name:
            if s.name in seen:
                raise DockerfileError(s.base.line, f"duplicate stage name {s.name!r}", name)
            seen[s.name] = s.index
    return global_args, stages


def find_stage(stages: list[Stage], ref: str, before: int | None = None) -> Stage | None:
    """The stage named (or numbered) ``ref``, among those before index ``before``."""
    limit = len(stages) if before is None else before
    lowered = ref.lower()
    for s in stages[:limit]:
        if s.name == lowered:
            return s
    if ref.isdigit() and int(ref) < limit:
        return stages[int(ref)]
    return None


def mount_sources(run: Run) -> list[str]:
    """The ``from=`` values of a RUN's mounts."""
    out = []
    for spec in run.mounts:
        for part in spec.split(","):
            key, _, value = part.partition("=")
            if key.strip() == "from" and value:
                out.append(value.strip())
    return out


def plan(commands: list[Command], target: str | None, global_env: dict[str, str],
         name: str = "Dockerfile") -> Plan:
    global_args, stages = split_stages(commands, name)
    if target:
        chosen = find_stage(stages, target)
        if chosen is None or (target.isdigit() and chosen.name):
            raise DockerfileError(0, f"target stage {target!r} could not be found", name)
    else:
        chosen = stages[-1]
    order: list[Stage] = []
    visiting: set[int] = set()

    def visit(stage: Stage) -> None:
        if stage in order:
            return
        if stage.index in visiting:
            raise DockerfileError(stage.base.line, "circular dependency between stages", name)
        visiting.add(stage.index)
        for dep in dependencies(stage, stages, global_env, name):
            visit(dep)
        visiting.discard(stage.index)
        order.append(stage)

    visit(chosen)
    return Plan(global_args, stages, order, chosen)


def base_reference(stage: Stage, global_env: dict[str, str], name: str = "Dockerfile") -> str:
    try:
        ref = expand(stage.base.image, global_env)
    except WordError as e:
        raise DockerfileError(stage.base.line, str(e), name) from None
    if not ref:
        raise DockerfileError(stage.base.line, "base name (FROM) should not be blank", name)
    return ref


def dependencies(stage: Stage, stages: list[Stage], global_env: dict[str, str], name: str) -> list[Stage]:
    deps = []
    base = find_stage(stages, base_reference(stage, global_env, name), stage.index)
    if base is not None and base.name:  # a bare index is an image name in FROM
        deps.append(base)
    for c in stage.commands:
        refs = []
        if isinstance(c, CopyAdd) and c.source_stage:
            refs = [c.source_stage]
        elif isinstance(c, Run):
            refs = mount_sources(c)
        for ref in refs:
            dep = find_stage(stages, ref, stage.index)
            if dep is None and find_stage(stages, ref) is not None:
                raise DockerfileError(c.line, f"stage {ref!r} is used before it is defined", name)
            if dep is not None:
                deps.append(dep)
    return deps

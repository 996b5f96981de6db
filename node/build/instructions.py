"""What each parsed instruction means, checked before anything builds (BuildKit parses every
stage up front, so a bad flag in any stage fails the build at once with ``Dockerfile:LINE``).

Variables are not expanded here: that depends on the ARG/ENV state when the step runs (the
executor calls ``words.expand``). Raw words keep their quotes for that.
"""
from __future__ import annotations

from .dockerfile import Dockerfile, Heredoc, Instruction, parse_flags
from .words import split_words

HEALTH_FLAGS = {"interval": False, "timeout": False, "start-period": False, "start-interval": False,
                "retries": False}
# --link is accepted: every layer here is already a diff of its own. The labs flags --parents and
# --exclude, and ADD of git URLs (--keep-git-dir), are not supported: "unknown flag" says so.
COPY_FLAGS = {"from": False, "chown": False, "chmod": False, "link": False}
ADD_FLAGS = {"chown": False, "chmod": False, "link": False, "checksum": False}
RUN_FLAGS = {"mount": True, "network": False, "security": False}
FROM_FLAGS = {"platform": False}


class Command:
    """A checked instruction; subclasses list their fields as class attributes (defaults), and
    ``_lists`` those that start as a fresh empty list. Plain classes, not dataclasses: a build
    that hits the cache everywhere is mostly interpreter start-up, and the dataclasses module
    (with inspect) would add ~30 ms of it."""
    _lists: tuple[str, ...] = ()

    def __init__(self, inst: Instruction, **fields) -> None:
        self.inst = inst
        for name in self._lists:
            setattr(self, name, [])
        for name, value in fields.items():
            if not hasattr(type(self), name):
                raise TypeError(f"{type(self).__name__} has no field {name!r}")
            setattr(self, name, value)

    @property
    def line(self) -> int:
        return self.inst.line


class From(Command):
    image: str = ""            # raw: expanded with the global ARGs
    name: str | None = None    # AS name (lower case, as BuildKit keeps it)
    platform: str | None = None


class Run(Command):
    shell_form: bool = True
    command: list[str] | str = ""   # list (exec form) or the shell text
    mounts: list[str] = None        # (every field below without a default: always given)
    network: str | None = None
    heredocs: list[Heredoc] = None


class KeyValues(Command):  # ENV, LABEL
    pairs: list[tuple[str, str]] = None


class Arg(Command):
    args: list[tuple[str, str | None]] = None


class CommandLine(Command):  # CMD, ENTRYPOINT
    shell_form: bool = True
    command: list[str] | str = ""


class Shell(Command):
    shell: list[str] = None


class CopyAdd(Command):
    sources: list[str] = None     # raw words (heredoc names included)
    dest: str = ""
    source_stage: str | None = None                    # --from
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    checksum: str | None = None
    heredocs: list[Heredoc] = None

    @property
    def is_add(self) -> bool:
        return self.inst.cmd == "add"


class Words(Command):  # EXPOSE, VOLUME, USER, WORKDIR, STOPSIGNAL, MAINTAINER, ONBUILD
    _lists = ("words",)
    words: list[str] = None
    text: str = ""


class Healthcheck(Command):
    test: list[str] | None = None   # ["NONE"] or ["CMD", ...] / ["CMD-SHELL", "..."]
    options: dict[str, str] = None


def _flags(inst: Instruction, allowed: dict[str, bool], name: str) -> dict[str, list[str]]:
    return parse_flags(inst, allowed, name)


def _no_flags(inst: Instruction, name: str) -> None:
    if inst.flags:
        _flags(inst, {}, name)


def _key_values(inst: Instruction, name: str) -> list[tuple[str, str]]:
    words = split_words(inst.args)
    if not words:
        raise inst.error(f"{inst.cmd.upper()} requires at least one argument", name)
    if "=" not in words[0]:
        if inst.cmd == "label":
            raise inst.error(f"Syntax error - can't find = in {words[0]!r}. Must be of the form: name=value", name)
        key, _, rest = inst.args.strip().partition(" ")
        rest = rest.strip()
        if not rest:
            raise inst.error("ENV must have two arguments", name)
        return [(key, rest)]
    pairs = []
    for w in words:
        key, sep, value = w.partition("=")
        if not sep:
            raise inst.error(f"Syntax error - can't find = in {w!r}. Must be of the form: name=value", name)
        if not key:
            raise inst.error(f"{inst.cmd.upper()} names can not be blank", name)
        pairs.append((key, value))
    return pairs


def _command_line(inst: Instruction) -> tuple[bool, list[str] | str]:
    if inst.json_args is not None:
        return False, list(inst.json_args)
    return True, inst.args


def interpret(inst: Instruction, name: str = "Dockerfile") -> Command:
    cmd = inst.cmd
    if cmd == "from":
        flags = _flags(inst, FROM_FLAGS, name)
        words = inst.args.split()
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
            raise inst.error("FROM requires either one or three arguments (FROM IMAGE [AS NAME])", name)
        stage = words[2].lower() if len(words) == 3 else None
        if stage is not None and not _valid_stage_name(stage):
            raise inst.error(f"invalid name for build stage: {words[2]!r}, name can't start with a number "
                             "or contain symbols", name)
        return From(inst, image=words[0], name=stage, platform=(flags.get("platform") or [None])[0])
    if cmd == "run":
        flags = _flags(inst, RUN_FLAGS, name)
        shell_form, command = _command_line(inst)
        if not command and not inst.heredocs:
            raise inst.error("RUN requires at least one argument", name)
        network = (flags.get("network") or [None])[0]
        if network not in (None, "default", "none", "host"):
            raise inst.error(f"unsupported network mode {network!r} (default, none, host)", name)
        security = (flags.get("security") or ["sandbox"])[0]
        if security != "sandbox":
            raise inst.error(f"RUN --security={security} is not allowed: RUN steps always run sandboxed", name)
        return Run(inst, shell_form=shell_form, command=command, mounts=flags.get("mount", []),
                   network=network, heredocs=inst.heredocs)
    if cmd in ("env", "label"):
        _no_flags(inst, name)
        return KeyValues(inst, pairs=_key_values(inst, name))
    if cmd == "arg":
        _no_flags(inst, name)
        words = split_words(inst.args)
        if not words:
            raise inst.error("ARG requires at least one argument", name)
        args = []
        for w in words:
            key, sep, value = w.partition("=")
            if not key:
                raise inst.error("ARG names can not be blank", name)
            args.append((key, value if sep else None))
        return Arg(inst, args=args)
    if cmd in ("cmd", "entrypoint"):
        _no_flags(inst, name)
        shell_form, command = _command_line(inst)
        return CommandLine(inst, shell_form=shell_form, command=command)
    if cmd == "shell":
        _no_flags(inst, name)
        if inst.json_args is None or not inst.json_args:
            raise inst.error("SHELL requires the arguments to be in JSON form", name)
        return Shell(inst, shell=list(inst.json_args))
    if cmd in ("copy", "add"):
        flags = _flags(inst, COPY_FLAGS if cmd == "copy" else ADD_FLAGS, name)
        words = list(inst.json_args) if inst.json_args is not None else split_words(inst.args)
        if len(words) < 2:
            raise inst.error(f"{cmd.upper()} requires at least two arguments, but only one was provided. "
                             "Destination could not be determined", name)
        one = lambda k: (flags.get(k) or [None])[0]  # noqa: E731
        chmod = one("chmod")
        if chmod is not None and not _valid_chmod(chmod):
            raise inst.error(f"invalid chmod parameter {chmod!r}: it must be an octal number", name)
        return CopyAdd(inst, sources=words[:-1], dest=words[-1], source_stage=one("from"), chown=one("chown"),
                       chmod=chmod, link=one("link") in ("true", ""), checksum=one("checksum"),
                       heredocs=inst.heredocs)
    if cmd == "healthcheck":
        flags = _flags(inst, HEALTH_FLAGS, name)
        words = inst.args.split(None, 1)
        if not words:
            raise inst.error("HEALTHCHECK requires an argument", name)
        kind = words[0].upper()
        if kind == "NONE":
            if len(words) > 1 or flags:
                raise inst.error("HEALTHCHECK NONE takes no arguments", name)
            return Healthcheck(inst, test=["NONE"], options={})
        if kind != "CMD" or len(words) < 2:
            raise inst.error(f"unknown type for HEALTHCHECK: {words[0]} (CMD or NONE)", name)
        sub = Instruction("cmd", inst.line, inst.end_line, words[1], args=words[1])
        import json as _json
        try:
            value = _json.loads(words[1]) if words[1].startswith("[") else None
        except ValueError:
            value = None
        test = ["CMD", *value] if isinstance(value, list) else ["CMD-SHELL", sub.args]
        return Healthcheck(inst, test=test, options={k: v[0] for k, v in flags.items()})
    # the plain-word instructions
    _no_flags(inst, name)
    if cmd in ("workdir", "user", "stopsignal", "maintainer", "onbuild"):
        if not inst.args:
            raise inst.error(f"{cmd.upper()} requires exactly one argument", name)
        return Words(inst, text=inst.args)
    if cmd == "volume" and inst.json_args is not None:
        return Words(inst, words=list(inst.json_args), text=inst.args)
    if not inst.args:
        raise inst.error(f"{cmd.upper()} requires at least one argument", name)
    return Words(inst, words=split_words(inst.args), text=inst.args)


def _valid_stage_name(name: str) -> bool:
    import re
    return bool(re.fullmatch(r"[a-z][a-z0-9_.-]*", name))


def _valid_chmod(value: str) -> bool:
    return bool(value) and all(c in "01234567" for c in value) and len(value) <= 4


def interpret_all(dockerfile: Dockerfile, name: str = "Dockerfile") -> list[Command]:
    return [interpret(i, name) for i in dockerfile.instructions]

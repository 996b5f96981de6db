"""The instructions that only change the image config: ENV, LABEL, CMD, ENTRYPOINT, SHELL, USER,
EXPOSE, VOLUME, STOPSIGNAL, HEALTHCHECK, ONBUILD, MAINTAINER. Each returns the ``created_by``
text docker's BuildKit writes in the image history for it (an ``empty_layer`` entry).

Docker's rules kept here: ENTRYPOINT set in a stage drops a Cmd inherited from the base; the
shell form becomes SHELL + [text]; EXPOSE takes ``port[/proto]`` and ranges; HEALTHCHECK
durations are stored in nanoseconds; ENV beats ARG when both name a variable.
"""
from __future__ import annotations

import json
import re

from .dockerfile import DockerfileError
from .instructions import CommandLine, Healthcheck
from .words import WordError, expand, expand_fields

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
            "h": 3_600_000_000_000}


def go_list(values: list[str]) -> str:
    """How BuildKit prints a string list in history: ``["a" "b"]``."""
    return "[" + " ".join(json.dumps(v) for v in values) + "]"


def parse_duration(text: str) -> int:
    pos, total = 0, 0
    if text == "0":
        return 0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += int(float(m.group(1)) * _UNIT_NS[m.group(2)])
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"time: invalid duration {text!r}")
    return total


def exposed_ports(words: list[str]) -> list[str]:
    out = []
    for word in words:
        port, _, proto = word.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise ValueError(f"invalid proto: {proto}")
        start, _, end = port.partition("-")
        if not start.isdigit() or (end and not end.isdigit()):
            raise ValueError(f"invalid containerPort: {port}")
        for p in range(int(start), int(end or start) + 1):
            out.append(f"{p}/{proto}")
    return out


class Applier:
    """Applies metadata instructions to a StageImage; ``env`` gives the expansion variables."""

    def __init__(self, image, env, name: str = "Dockerfile") -> None:
        self.image, self.env, self.name = image, env, name
        self.cmd_set = False  # whether this stage set Cmd (ENTRYPOINT then keeps it)

    def _x(self, c, word: str) -> str:
        try:
            return expand(word, self.env(), escape=self.escape)
        except WordError as e:
            raise DockerfileError(c.line, str(e), self.name) from None

    escape = "\\"

    def command_line(self, c: CommandLine) -> list[str]:
        if c.shell_form:
            shell = list(self.image.config.get("Shell") or ["/bin/sh", "-c"])
            return shell + [c.command]
        return list(c.command)

    def apply(self, c) -> str:
        cfg = self.image.config
        cmd = c.inst.cmd
        if cmd == "env":
            parts = []
            for key, raw in c.pairs:
                value = self._x(c, raw)
                self.image.set_env(self._x(c, key), value)
                parts.append(f"{key}={value}")
            return "ENV " + " ".join(parts)
        if cmd == "label":
            labels = dict(cfg.get("Labels") or {})
            parts = []
            for key, raw in c.pairs:
                k, v = self._x(c, key), self._x(c, raw)
                labels[k] = v
                parts.append(f"{k}={v}")
            cfg["Labels"] = labels
            return "LABEL " + " ".join(parts)
        if cmd == "cmd":
            cfg["Cmd"] = self.command_line(c)
            self.cmd_set = True
            return f"CMD {go_list(cfg['Cmd'])}"
        if cmd == "entrypoint":
            cfg["Entrypoint"] = self.command_line(c)
            if not self.cmd_set:
                cfg.pop("Cmd", None)
            return f"ENTRYPOINT {go_list(cfg['Entrypoint'])}"
        if cmd == "shell":
            cfg["Shell"] = list(c.shell)
            return f"SHELL {go_list(c.shell)}"
        if cmd == "user":
            cfg["User"] = self._x(c, c.text.strip())
            return f"USER {cfg['User']}"
        if cmd == "expose":
            try:
                words = expand_fields(c.text, self.env())
                ports = exposed_ports(words)
            except (ValueError, WordError) as e:
                raise DockerfileError(c.line, str(e), self.name) from None
            exposed = dict(cfg.get("ExposedPorts") or {})
            for p in ports:
                exposed[p] = {}
            cfg["ExposedPorts"] = exposed
            return "EXPOSE map[" + " ".join(f"{p}:{{}}" for p in sorted(ports)) + "]"
        if cmd == "volume":
            words = c.words if c.inst.json_args is not None else expand_fields(c.text, self.env())
            if c.inst.json_args is not None:
                words = [self._x(c, w) for w in words]
            volumes = dict(cfg.get("Volumes") or {})
            for w in words:
                if not w.strip():
                    raise DockerfileError(c.line, "VOLUME specified can not be an empty string", self.name)
                volumes[w] = {}
            cfg["Volumes"] = volumes
            return f"VOLUME {go_list(words)}"
        if cmd == "stopsignal":
            cfg["StopSignal"] = self._x(c, c.text.strip())
            return f"STOPSIGNAL {cfg['StopSignal']}"
        if cmd == "healthcheck":
            return self._healthcheck(c)
        if cmd == "onbuild":
            triggers = list(cfg.get("OnBuild") or [])
            triggers.append(c.text.strip())
            cfg["OnBuild"] = triggers
            return f"ONBUILD {c.text.strip()}"
        if cmd == "maintainer":
            self.image.author = c.text.strip()
            return f"MAINTAINER {c.text.strip()}"
        raise DockerfileError(c.line, f"{cmd.upper()} is not a metadata instruction", self.name)

    def _healthcheck(self, c: Healthcheck) -> str:
        cfg = self.image.config
        if c.test == ["NONE"]:
            cfg["Healthcheck"] = {"Test": ["NONE"]}
            return "HEALTHCHECK NONE"
        check: dict = {"Test": list(c.test)}
        keys = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
                "start-interval": "StartInterval"}
        try:
            for flag, field in keys.items():
                if flag in c.options:
                    check[field] = parse_duration(c.options[flag])
            if "retries" in c.options:
                check["Retries"] = int(c.options["retries"])
        except ValueError as e:
            raise DockerfileError(c.line, f"HEALTHCHECK: {e}", self.name) from None
        cfg["Healthcheck"] = check
        return f"HEALTHCHECK &{{{go_list(check['Test'])} ...}}"


__all__ = ["Applier", "go_list", "exposed_ports", "parse_duration"]

"""The targets the issues set for bench rows, so the report judges each row against its target
and not only against "better than the reference".

A target is keyed by (area, metric) exactly as the row names them. ``ratio`` targets bound
Dockyard / reference; ``value`` targets bound Dockyard's own figure (in the row's unit).
Rows without a target keep the report's plain "better side of 1" verdict.
"""
from __future__ import annotations

from typing import NamedTuple

from bench.rows import Row, ratio


class Target(NamedTuple):
    bound: str    # "max" (at most) or "min" (at least)
    value: float
    of: str       # "ratio" (Dockyard / reference) or "value" (Dockyard's figure)
    issue: int

    def text(self) -> str:
        sign = "≤" if self.bound == "max" else "≥"
        return f"{sign} {self.value:g}{'' if self.of == 'ratio' else ' (value)'} (#{self.issue})"


TARGETS: dict[tuple[str, str], Target] = {
    # issue 18: speed on the default paths
    ("node", "run --rm IMG /bin/true on the default (bridge) network, start to exit"): Target("max", 0.5, "ratio", 18),
    ("node", "run --rm --network none IMG /bin/true, start to exit"): Target("max", 0.3, "ratio", 18),
    ("node", "run -d -p H:80 IMG httpd, start to the first HTTP 200 on H"): Target("max", 0.5, "ratio", 18),
    ("node", "OCI bundle /bin/true start to exit, builtin runtime vs runc"): Target("max", 1.0, "ratio", 18),
    ("node", "memory per running container: monitor (dockyard) vs containerd-shim (docker)"):
        Target("max", 1.0, "ratio", 18),
    ("node", "`ps` with 50 running containers"): Target("max", 50, "value", 18),
    ("node", "`images` with 50 images"): Target("max", 50, "value", 18),
    ("node", "pull 5-layer image (210 MB, random content) from a local registry"): Target("max", 0.6, "ratio", 18),
    ("registry", "manifest PUT, 8 concurrent clients"): Target("min", 1.5, "ratio", 18),
    ("registry", "push 4 KiB blobs, 8 concurrent clients"): Target("min", 2.0, "ratio", 18),
    ("registry", "idle RSS of the server after start"): Target("max", 2.0, "ratio", 18),
    ("registry", "peak RSS of the server during the 1 GiB pushes"): Target("max", 2.0, "ratio", 18),
    # issue 17: the pull-through cache
    ("proxy", "cold pull through the cache, 5 x 40 MiB layers"): Target("min", 1.0, "ratio", 17),
    ("proxy", "warm pull through the cache, 5 x 40 MiB layers"): Target("min", 1.0, "ratio", 17),
    # issue 15: S3 and replicas
    ("s3", "pull 256 MiB blob (streamed from S3)"): Target("min", 1.0, "ratio", 15),
    ("s3", "push 4 KiB blobs, 8 concurrent clients"): Target("min", 1.0, "ratio", 15),
    ("s3", "push 256 MiB blob, one PATCH (docker's flow)"): Target("min", 1.0, "ratio", 15),
    ("s3", "push 64 MiB blob in 1 MiB PATCHes (S3 parts need 5 MiB)"): Target("min", 1.0, "ratio", 15),
    ("s3", "manifest GET by tag, 64 connections"): Target("min", 1.0, "ratio", 15),
    ("s3 replicas", "manifest GET by tag, 64 connections, through nginx"): Target("min", 1.0, "ratio", 15),
    ("s3 replicas", "push 4 KiB blobs, 16 concurrent clients, through nginx"): Target("min", 1.0, "ratio", 15),
    ("s3 replicas", "3 concurrent pushes of 64 MiB, through nginx"): Target("min", 1.0, "ratio", 15),
}


def target_of(r: Row) -> Target | None:
    return TARGETS.get((r.get("area"), r.get("metric")))


def met(r: Row) -> bool | None:
    """Whether the row meets its target; None when it has none or was not measured."""
    t = target_of(r)
    if t is None:
        return None
    figure = ratio(r) if t.of == "ratio" else r.get("dockyard")
    if not isinstance(figure, (int, float)):
        return None
    return figure <= t.value if t.bound == "max" else figure >= t.value


def cell(r: Row) -> str:
    t = target_of(r)
    if t is None:
        return ""
    verdict = met(r)
    return t.text() + ("" if verdict is None else (" met" if verdict else " **not met**"))

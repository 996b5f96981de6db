"""Overlay mounts the build makes for itself: the steps so far as lower dirs, a fresh upper dir
that collects one step's changes.

Options pinned whatever the kernel's defaults: ``redirect_dir=off`` (a renamed directory is
copied whole, so the upper dir alone tells what changed), ``metacopy=off`` (a chmod copies the
data too: no upper file without its content) and ``index=off``. A build with no layer yet (FROM
scratch) gets one empty lower dir, since overlay needs one.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import runner

MAX_MOUNT_DATA = 4000  # one page of mount options
# No syncs of the upper dir (kernel 5.10+): a step's upper is thrown away if the machine dies
# mid-step anyway, and the layer made from it is fsynced by the content store. Unmounting a
# syncing overlay costs ~0.1 s a step.
def _kernel() -> tuple[int, int]:
    parts = os.uname().release.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


VOLATILE = ",volatile" if _kernel() >= (5, 10) else ""


class OverlayError(OSError):
    pass


def options(lowers: list[Path], upper: Path, work: Path, empty: Path) -> str:
    lower = ":".join(str(p) for p in reversed(lowers)) if lowers else str(empty)
    data = (f"lowerdir={lower},upperdir={upper},workdir={work},redirect_dir=off,metacopy=off,index=off"
            f"{VOLATILE}")
    if len(data) > MAX_MOUNT_DATA:
        raise OverlayError(f"too many layers for one overlay mount ({len(lowers)})")
    return data


def mount(target: Path, lowers: list[Path], upper: Path, work: Path, scratch: Path) -> None:
    """Mount the overlay at ``target``; ``scratch`` is a dir this build owns (for the empty lower)."""
    empty = scratch / "empty"
    empty.mkdir(parents=True, exist_ok=True)
    for d in (upper, work, target):
        d.mkdir(parents=True, exist_ok=True)
    runner.mount_overlay(target, options(lowers, upper, work, empty))


def mount_readonly(target: Path, lowers: list[Path], scratch: Path) -> None:
    """The merged view of ``lowers`` without an upper dir (COPY --from reads it)."""
    empty = scratch / "empty"
    empty.mkdir(parents=True, exist_ok=True)
    target.mkdir(parents=True, exist_ok=True)
    layers = [empty, *lowers] if len(lowers) < 2 else list(lowers)  # overlay wants two lowers here
    lower = ":".join(str(p) for p in reversed(layers))
    # no upper dir: overlay mounts it read-only
    runner.mount_overlay(target, f"lowerdir={lower},redirect_dir=off,metacopy=off,index=off")


def unmount(target: Path) -> None:
    while os.path.ismount(str(target)):
        try:
            runner.unmount(target)
        except OSError:
            runner.unmount(target, detach=True)

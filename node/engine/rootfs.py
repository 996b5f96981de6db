"""The container's root filesystem on the host: an overlay of the image's layer snapshots (lower,
topmost first in lowerdir) with the container's own upper and work dirs, mounted at
bundle/rootfs while the container runs (as containerd does before calling runc)."""
from __future__ import annotations

import os

from node.engine import EngineError
from node.runtime import syscalls as sc

MAX_MOUNT_DATA = 4000  # the kernel copies at most one page of mount options


def mount_rootfs(container) -> None:
    target = str(container.rootfs)
    if os.path.ismount(target):
        return
    layers = container.meta.get("LayerDirs") or []
    if not layers:
        raise EngineError("image has no layers", 125)
    for layer in layers:
        if not os.path.isdir(layer):
            raise EngineError(f"image layer {layer} is missing", 125)
    lower = ":".join(reversed(layers))  # overlay wants the top layer first
    data = f"lowerdir={lower},upperdir={container.dir / 'upper'},workdir={container.dir / 'work'}"
    if len(data) > MAX_MOUNT_DATA:
        raise EngineError(f"too many layers for one overlay mount ({len(layers)})", 125)
    os.makedirs(target, exist_ok=True)
    try:
        sc.mount("overlay", target, "overlay", 0, data)
    except OSError as e:
        raise EngineError(f"mounting the container's root filesystem: {e}", 125) from None


def unmount_rootfs(container) -> None:
    target = str(container.rootfs)
    while os.path.ismount(target):
        try:
            sc.umount2(target, 0)
        except OSError:
            sc.umount2(target, sc.MNT_DETACH)

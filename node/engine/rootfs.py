"""The container's root filesystem on the host: an overlay of the image's layer snapshots (lower,
topmost first in lowerdir) with the container's own upper and work dirs, mounted at
bundle/rootfs while the container runs (as containerd does before calling runc)."""
from __future__ import annotations

import os

from node.engine import EngineError
from node.engine import runtimes

MAX_MOUNT_DATA = 4000  # the kernel copies at most one page of mount options


def mount_rootfs(container) -> None:
    target = str(container.rootfs)
    if os.path.ismount(target):
        return
    layers = container.spec.layer_dirs
    if not layers:
        raise EngineError("image has no layers", 125)
    for layer in layers:
        if not os.path.isdir(layer):
            raise EngineError(f"image layer {layer} is missing", 125)
    maps = container.spec.id_mappings
    if maps:
        layers = _idmapped_layers(container, layers, maps)
    lower = ":".join(reversed(layers))  # overlay wants the top layer first
    data = f"lowerdir={lower},upperdir={container.dir / 'upper'},workdir={container.dir / 'work'}"
    if len(data) > MAX_MOUNT_DATA:
        _unmount_lowers(container)
        raise EngineError(f"too many layers for one overlay mount ({len(layers)})", 125)
    os.makedirs(target, exist_ok=True)
    try:
        runtimes.mount_overlay(target, data)
    except OSError as e:
        _unmount_lowers(container)
        raise EngineError(f"mounting the container's root filesystem: {e}", 125) from None


def _idmapped_layers(container, layers: list[str], maps: dict) -> list[str]:
    """--userns=private: each layer bound at CONTAINER/lower/N through an idmapped mount (see
    node/engine/userns.py); short paths, which also leave more room in the overlay options."""
    from node.engine import userns
    base = container.dir / "lower"
    _unmount_lowers(container)
    result = []
    try:
        with userns.HelperNamespace(maps) as helper:
            for i, layer in enumerate(layers):
                target = base / str(i)
                target.mkdir(parents=True, exist_ok=True)
                runtimes.idmapped_bind(layer, str(target), helper.fd)
                result.append(str(target))
    except OSError as e:
        _unmount_lowers(container)
        raise EngineError(f"--userns=private: idmapped mount of the image's layers: {e}", 125) from None
    return result


def detach_mounts_under(path) -> None:
    """Before a container's directory is deleted: nothing may stay mounted below it (an idmapped
    layer bind would let the delete reach into the image itself). Raises OSError if one stays."""
    prefix = os.path.realpath(str(path)) + "/"

    def mounted() -> list[str]:
        with open("/proc/self/mountinfo") as f:
            points = [_unescaped(line.split()[4]) for line in f]
        return sorted({p for p in points if p.startswith(prefix)}, key=len, reverse=True)

    found = mounted()
    if not found:
        return  # the usual case (`run --rm`: the rootfs is already unmounted): no second read
    for point in found:
        try:
            runtimes.unmount(point, detach=True)
        except OSError:
            pass
    left = mounted()
    if left:
        raise OSError(16, f"still mounted, not deleting: {', '.join(left)}")


def _unescaped(field: str) -> str:
    """A mount point as mountinfo escapes it (\\040 for a space...), decoded as before; a plain
    ASCII field is its own decoding, and skipping the codec spares importing it on every `rm`."""
    if field.isascii() and "\\" not in field:
        return field
    return field.encode().decode("unicode_escape")


def _unmount_lowers(container) -> None:
    base = container.dir / "lower"
    if not base.is_dir():
        return
    for name in os.listdir(base):
        # a bind of a directory on the same filesystem: os.path.ismount cannot tell; unmount
        # until the kernel says there is nothing mounted there (EINVAL)
        for _ in range(16):
            try:
                runtimes.unmount(str(base / name), detach=True)
            except OSError:
                break


def unmount_rootfs(container) -> None:
    target = str(container.rootfs)
    while os.path.ismount(target):
        try:
            runtimes.unmount(target)
        except OSError:
            runtimes.unmount(target, detach=True)
    _unmount_lowers(container)

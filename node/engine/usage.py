"""Which images containers use, for the image store's `rmi` (which must refuse to remove them)."""
from __future__ import annotations

from pathlib import Path

from node.engine.records import list_containers


def images_in_use(root: Path) -> set[str]:
    """Image IDs ("sha256:...") referenced by any container record, running or not."""
    used = set()
    for c in list_containers(root):
        image = c.spec.image
        if image:
            used.add(image)
    return used

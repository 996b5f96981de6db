"""Which images containers use, for the image store's `rmi` (which must refuse to remove them)."""
from __future__ import annotations

from pathlib import Path

from node.engine import EngineError
from node.engine.records import Container, all_ids, containers_dir


def images_in_use(root: Path) -> set[str]:
    """Image IDs ("sha256:...") referenced by any container record, running or not. A record
    that cannot be read could be using any image: then nobody can tell, and EngineError says so
    (rmi must refuse rather than guess "not in use")."""
    used = set()
    d = containers_dir(root)
    try:
        entries = [e for e in d.iterdir() if e.is_dir() and not e.name.startswith(".")] if d.exists() else []
    except OSError as e:
        raise EngineError(f"cannot tell which images containers use: {d}: {e.strerror}", 1) from None
    readable = set(all_ids(root))
    for entry in entries:
        if entry.name not in readable:
            raise EngineError(f"cannot tell which images containers use: container record {entry} is unreadable", 1)
        try:
            image = Container(root, entry.name).spec.image
        except (OSError, ValueError, TypeError) as e:
            raise EngineError(f"cannot tell which images containers use: container {entry.name[:12]}: {e}", 1) from None
        if image:
            used.add(image)
    return used

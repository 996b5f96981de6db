"""Named volumes: directories under ROOT/volumes/<name>/_data, like Docker's local driver.

    ROOT/volumes/<name>/
      volume.json     Name, Driver, Mountpoint, CreatedAt, Labels, Anonymous
      _data/          what containers see
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from node.atomic import write_json
from node.engine import EngineError
from node.engine.options import _NAME
from node.engine.records import list_containers, now_iso


def volumes_dir(root: str | Path) -> Path:
    return Path(root) / "volumes"


def inspect_volume(root: str | Path, name: str) -> dict:
    path = volumes_dir(root) / name / "volume.json"
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, NotADirectoryError):
        raise EngineError(f"no such volume: {name}", 1) from None


def create_volume(root: str | Path, name: str | None = None, anonymous: bool = False,
                  labels: dict | None = None, options: dict | None = None) -> dict:
    if name is None:
        name = os.urandom(32).hex()
    if not re.match(_NAME, name) or len(name) > 255:
        raise EngineError(f"invalid volume name {name!r}", 1)
    d = volumes_dir(root) / name
    if (d / "volume.json").exists():
        return inspect_volume(root, name)
    (d / "_data").mkdir(parents=True, exist_ok=True)
    doc = {"Name": name, "Driver": "local", "Mountpoint": str(d / "_data"), "CreatedAt": now_iso(),
           "Labels": labels or {}, "Scope": "local", "Options": dict(options or {}), "Anonymous": anonymous}
    write_json(d / "volume.json", doc)
    return doc


def list_volumes(root: str | Path) -> list[dict]:
    try:
        names = sorted(os.listdir(volumes_dir(root)))
    except FileNotFoundError:
        return []
    result = []
    for name in names:
        try:
            result.append(inspect_volume(root, name))
        except EngineError:
            continue
    return result


def users_of(root: str | Path, name: str) -> list[str]:
    users = []
    for c in list_containers(root):
        for m in c.spec.mounts:
            if m.get("Type") == "volume" and m.get("Name") == name:
                users.append(c.id)
    return users


def remove_volume(root: str | Path, name: str, force: bool = False) -> None:
    inspect_volume(root, name)
    users = users_of(root, name)
    if users and not force:
        raise EngineError(f"remove {name}: volume is in use - [{', '.join(u[:12] for u in users)}]", 1)
    import shutil
    shutil.rmtree(volumes_dir(root) / name)


def populate(volume: dict, source_dir: Path) -> None:
    """Docker copies the image's content at the mount point into a new, empty volume."""
    import shutil
    data = Path(volume["Mountpoint"])
    if not source_dir.is_dir() or any(data.iterdir()):
        return
    for entry in source_dir.iterdir():
        target = data / entry.name
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, target, symlinks=True)
        else:
            shutil.copy2(entry, target, follow_symlinks=False)

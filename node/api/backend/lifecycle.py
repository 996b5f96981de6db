"""rename, commit, update and import: the engine's and the image store's calls for
node/api/lifecycle.py."""
from __future__ import annotations

from node.api.backend.core import _thread


async def rename(root, container, new_name: str) -> None:
    from node.engine.rename import rename_container
    await _thread(rename_container, root, container, new_name)


async def commit(root, container, repo_tag: str | None, changes: list[str], message: str, author: str,
                 pause: bool, config: dict | None):
    from node.engine.commit import commit_container
    return await _thread(commit_container, root, container, repo_tag, changes, message, author, pause, config)


async def update(container, limits: dict) -> None:
    from node.engine.update import Limits, update_container
    await _thread(update_container, container, Limits(**limits))


async def import_rootfs(root, path, repo_tag: str | None, changes: list[str], message: str,
                        platform: str | None):
    from node.images.rootfs_import import import_rootfs as run_import

    def work():
        with open(path, "rb") as src:
            return run_import(root, src, repo_tag, changes, message, "-", platform)
    return await _thread(work)

"""What a container needs on the host before its init starts, and what must go after it exits:
the rootfs mount (rootfs.py), volumes populated from the image, the network (netsetup.py), the
id-mapped ownership for --userns=private (userns.py), the OCI bundle (bundle.py)."""
from __future__ import annotations

import os

from node.engine import bundle, netsetup, rootfs, users
from node.engine.records import Container
from node.engine.runtimes import Runtime, runtime_of, secure_join
from node.forkguard import own_process


def prepare(root, container: Container) -> tuple[Runtime, netsetup.NetworkSetup]:
    """Mount the rootfs, set up the network, write the bundle. Returns (runtime, network)."""
    runtime = runtime_of(container)
    rootfs.mount_rootfs(container)
    try:
        network = _prepare_mounted(root, container)
    except BaseException:
        release(root, container, runtime)
        raise
    return runtime, network


@own_process
def _prepare_mounted(root, container: Container) -> netsetup.NetworkSetup:
    config = container.config
    rootfs_dir = str(container.rootfs)
    user = users.resolve(rootfs_dir, config.user)
    workdir = secure_join(rootfs_dir, config.working_dir or "/")
    os.makedirs(workdir, exist_ok=True)
    _populate_volumes(container, rootfs_dir)
    network = netsetup.setup(root, container)
    if container.spec.id_mappings:  # --userns=private: node/engine/userns.py
        from node.engine import userns
        userns.adopt(container, rootfs_dir, workdir)
    env = list(config.env)
    keys = {e.partition("=")[0] for e in env}
    if "HOSTNAME" not in keys:
        env.insert(1 if env else 0, f"HOSTNAME={config.hostname}")
    if "HOME" not in keys:
        env.append(f"HOME={user['home']}")
    spec = bundle.build_spec(container, user, network, env)
    bundle.write_bundle(container, spec)
    return network


def _populate_volumes(container: Container, rootfs_dir: str) -> None:
    from pathlib import Path
    from node.engine.volumes import populate
    for m in container.spec.mounts:
        if m["Type"] == "volume" and not m.get("NoCopy"):  # --mount volume-nocopy: docker's opt-out
            populate({"Mountpoint": m["Source"]}, Path(secure_join(rootfs_dir, m["Destination"])))


def release(root, container: Container, runtime: Runtime | None = None) -> None:
    """Undo prepare/create after the init is gone; every step runs even if another fails."""
    if runtime is None:
        try:
            runtime = runtime_of(container)
        except Exception:  # noqa: BLE001 - an unknown runtime has nothing of ours to delete
            runtime = None
    steps = [lambda: rootfs.unmount_rootfs(container), lambda: netsetup.teardown(root, container)]
    if runtime is not None:
        steps.insert(0, lambda: runtime.delete(container.id, str(container.bundle)))
    for step in steps:
        try:
            step()
        except Exception:  # noqa: BLE001 - leave nothing behind that a later step could remove
            pass

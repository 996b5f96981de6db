"""The build's only door into the engine: a RUN step as a container of Dockyard's own runtime.

Every call from node/build into node/engine (and its runtimes) is in this module, so a reshaped
engine seam costs one edit here. The container is made the way `dockyard run` makes one
(node.engine.create.create_container: the same namespaces, capabilities, seccomp profile,
masked and read-only /proc paths, network modes), then started by the engine's monitor
(node.engine.monitor.run_once) in a worker thread while this thread streams its json-file log.

The rootfs is mounted here first (node/build/overlay.py: the steps so far as lower dirs, with
options that keep the upper dir a faithful diff); the engine sees a mounted rootfs and uses it.
After the exit the upper dir is moved out (it becomes the layer) and the container record is
removed. Ctrl-C kills the container and removes it, mounts included, before it propagates.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

from oci.record import Factory, record

from . import overlay

HOSTNAME = "buildkitsandbox"  # what BuildKit names a RUN container's host


class RunFailed(Exception):
    """The container could not be made or started (not a non-zero exit: that is a result)."""


@record
class RunSpec:
    argv: list[str]
    env: list[str]
    user: str = ""
    workdir: str = "/"
    network: str = "bridge"
    binds: list[tuple[str, str, bool]] = Factory(list)  # (host dir, target, readonly)


def run_step(root: Path, lowers: list[Path], spec: RunSpec, upper_out: Path, scratch: Path,
             on_output=lambda stream, data: None) -> int:
    """Run ``spec`` over ``lowers``; its upper dir ends at ``upper_out``. Returns the exit code."""
    from node.engine import EngineError
    from node.engine.create import create_container
    from node.engine.options import RunOptions

    opts = RunOptions("dockyard-build", command=spec.argv[1:], entrypoint=spec.argv[0], env=spec.env,
                      user=spec.user or "", workdir=spec.workdir or "/", network=spec.network,
                      hostname=HOSTNAME, name=f"dockyard-build-{os.urandom(6).hex()}",
                      volumes=[f"{src}:{dst}{':ro' if ro else ''}" for src, dst, ro in spec.binds])
    image = SimpleNamespace(id="sha256:" + "0" * 64, config=SimpleNamespace(config={"Env": []}),
                            layer_dirs=lambda: [str(p) for p in lowers] or [str(scratch / "empty")])
    try:
        container = create_container(root, opts, image)
    except EngineError as e:
        raise RunFailed(str(e)) from None
    # RUN steps run with umask 022 whatever the caller's (docker's rule); the runtime forks
    # the container from this process, so it inherits the process-wide mask
    old_umask = os.umask(0o022)
    try:
        overlay.mount(container.rootfs, lowers, container.dir / "upper", container.dir / "work", scratch)
        return _run_and_stream(root, container, on_output)
    finally:
        os.umask(old_umask)
        _remove(root, container, upper_out)


def _run_and_stream(root: Path, container, on_output) -> int:
    import threading
    from node.engine import EngineError, monitor

    result: dict = {}

    def work() -> None:
        try:
            result["code"] = monitor.run_once(root, container, attach=False)
        except EngineError as e:
            result["error"] = e
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            result["error"] = e

    thread = threading.Thread(target=work, name="dockyard-build-run", daemon=True)
    thread.start()
    offset = 0
    try:
        while True:
            alive = thread.is_alive()
            offset = _drain_log(container.log_path, offset, on_output)
            if not alive:
                break
            thread.join(0.02)
    except BaseException:  # Ctrl-C: the container goes before the interrupt does
        _kill(container)
        thread.join(10)
        raise
    error = result.get("error")
    if error is not None:
        raise RunFailed(str(error))
    return int(result.get("code", 125))


def _drain_log(path: Path, offset: int, on_output) -> int:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return offset
    end = data.rfind(b"\n")
    if end < 0:
        return offset
    for line in data[:end].splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        on_output(entry.get("stream", "stdout"), entry.get("log", "").encode())
    return offset + end + 1


def _kill(container) -> None:
    import signal
    try:
        pid = int(container.state().get("Pid") or 0)
    except (OSError, ValueError):
        pid = 0
    if pid > 0:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _remove(root: Path, container, upper_out: Path) -> None:
    """Unmount, keep the upper dir (moved to ``upper_out``), delete the record."""
    from node.engine import EngineError
    from node.engine.remove import remove_container

    overlay.unmount(container.rootfs)
    upper = container.dir / "upper"
    if upper.is_dir():
        os.rename(upper, upper_out)
    for _ in range(3):
        try:
            remove_container(root, container, force=True, volumes=True)
            return
        except EngineError:
            time.sleep(0.1)


def user_ids(rootfs: str, spec: str) -> tuple[int, int]:
    """``--chown`` / USER resolved against the image's passwd and group files (engine's rules:
    a bare uid means the same gid, docker's COPY --chown rule, handled by the caller)."""
    from node.engine import EngineError
    from node.engine.users import resolve
    try:
        user = resolve(rootfs, spec)
    except EngineError as e:
        raise RunFailed(str(e)) from None
    return int(user["uid"]), int(user["gid"])


# -- the runtime's mount primitives and path resolution, for overlay.py and copier.py ----------

def mount_overlay(target: Path, options: str) -> None:
    from node.engine.runtimes import mount_overlay as mount
    mount(str(target), options)


def unmount(target: Path, detach: bool = False) -> None:
    from node.engine.runtimes import unmount as umount
    umount(str(target), detach)


def secure_join(root: str, path: str) -> str:
    """``path`` resolved inside ``root`` as if it were "/" (symlinks cannot lead out)."""
    from node.runtime.mounts import secure_join as join
    return join(root, path)

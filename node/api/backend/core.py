"""Library errors as moby's statuses; containers, volumes and files in containers."""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from node.api.errors import ApiError, bad_request, conflict, not_found


async def _thread(fn, *args, **kwargs):
    return await asyncio.to_thread(_mapped, fn, *args, **kwargs)


def _mapped(fn, *args, **kwargs):
    from node.engine import EngineError
    from node.images.errors import ImageError, ImageNotFound, RegistryError
    from node.network.state import NetworkError
    try:
        return fn(*args, **kwargs)
    except ApiError:
        raise
    except EngineError as e:
        raise ApiError(_engine_status(str(e)), str(e)) from None
    except ImageNotFound as e:
        raise not_found(str(e)) from None
    except RegistryError as e:
        text = str(e)
        lowered = text.lower()
        status = 404 if any(w in lowered for w in ("not found", "unknown", "does not exist")) else 500
        raise ApiError(status, text) from None
    except ImageError as e:
        raise ApiError(409 if str(e).startswith("conflict") else 500, str(e)) from None
    except NetworkError as e:
        raise ApiError(_network_status(str(e)), str(e)) from None


def _engine_status(text: str) -> int:
    lowered = text.lower()
    if lowered.startswith("no such"):
        return 404
    if lowered.startswith("conflict") or "already in use" in lowered:
        return 409
    if any(w in lowered for w in ("is not running", "is paused", "is already paused", "is not paused",
                                  "you cannot remove", "multiple containers")):
        return 409
    if any(w in lowered for w in ("invalid", "unsupported", "conflicting options", "minimum memory",
                                  "no command specified", "must be", "needs to be", "cannot be used")):
        return 400
    return 500


def _network_status(text: str) -> int:
    lowered = text.lower()
    if "not found" in lowered:
        return 404
    if "already exists" in lowered:
        return 409
    if "active endpoints" in lowered or "pre-defined" in lowered:
        return 403
    if any(w in lowered for w in ("invalid", "reserved", "overlaps", "needs", "supported")):
        return 400
    return 500


# -- containers -------------------------------------------------------------------------------

def find(root, ref: str):
    from node.engine.records import find as find_record
    return _mapped(find_record, root, ref)


def container_exists(root, cid: str) -> bool:
    from node.engine.records import containers_dir
    return (containers_dir(root) / cid / "container.json").exists()


def containers(root) -> list:
    from node.engine.records import list_containers
    return list_containers(root)


def meta(container) -> dict:
    return container.meta


def state(container) -> dict:
    """The recorded state checked against the processes (a vanished monitor means exited)."""
    from node.engine import procs
    from node.engine.status import current_state
    # a removed record reads as a fresh "created" state: look for the record itself first
    if not (container.dir / "container.json").exists():
        return {"Status": "removed"}
    try:
        raw = container.state()
        lost = raw.get("Status") in ("running", "paused", "restarting") and \
            not procs.alive(raw.get("Pid", 0), raw.get("PidStart", 0)) and \
            not procs.alive(raw.get("MonitorPid", 0), raw.get("MonitorStart", 0))
        if lost:
            from node.engine.status import settled
            moved_on = settled(container, raw)  # the monitor recorded the exit after our read
            if moved_on is not None:
                return moved_on
        if lost and _in_event_loop():
            # current_state would release the lost container (mounts, network: pyroute2, which
            # runs an event loop of its own) right here, on the server's loop: a thread does it
            asyncio.get_running_loop().run_in_executor(None, current_state, container)
            return {**raw, "Status": "exited", "Running": False, "Paused": False, "Restarting": False,
                    "Pid": 0, "ExitCode": raw.get("ExitCode") or 255}
        return current_state(container)
    except FileNotFoundError:
        return {"Status": "removed"}


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def inspect(container) -> dict:
    from node.engine.inspect import inspect_container
    return _mapped(inspect_container, container)


def open_log(container):
    """The container's json-file log, opened (created if it is not yet: the monitor appends).
    An open file keeps its bytes readable even after an auto-remove deletes the record."""
    fd = os.open(container.log_path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o640)
    return os.fdopen(fd, "rb")


def read_log(f, offset: int) -> tuple[list[dict], int]:
    """Complete json-file entries written after ``offset``, and the offset after them."""
    f.seek(offset)
    data = f.read()
    end = data.rfind(b"\n") + 1
    entries = []
    for line in data[:end].splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries, offset + end


def image_for(root, ref: str):
    from node.images.store import ImageStore
    return _mapped(ImageStore(root).get, ref)


async def create(root, options: dict, image_ref: str, extra: dict):
    """``options``: node.engine.options.RunOptions fields; ``extra``: Docker fields the run
    options cannot say (labels, an Entrypoint list...), merged into the record afterwards."""
    def work():
        from node.engine.create import create_container
        from node.engine.options import RunOptions
        image = image_for(root, image_ref)
        opts = RunOptions(image=image_ref, **options)
        container = create_container(root, opts, image)
        if extra:
            record = dict(container.meta)
            for key, value in extra.items():
                if isinstance(value, dict) and isinstance(record.get(key), dict):
                    record[key] = {**record[key], **value}
                else:
                    record[key] = value
            container.save_meta(record)
        return container
    return await _thread(work)


def image_config(image) -> dict:
    return dict(getattr(image.config, "config", None) or {})


async def start(root, launcher, container) -> None:
    result = await launcher.call("start", {"root": str(root), "cid": container.id})
    if "error" in result:
        raise ApiError(result.get("status", 500), result["error"])


async def stop(container, timeout: float | None) -> None:
    from node.engine.stop import stop_container
    await _thread(stop_container, container, timeout)


async def kill(container, signal_name: str) -> None:
    from node.engine.stop import kill_container, parse_signal
    sig = _mapped(parse_signal, signal_name or "KILL")
    await _thread(kill_container, container, sig)


async def pause(container) -> None:
    from node.engine.pause import pause_container
    await _thread(pause_container, container)


async def unpause(container) -> None:
    from node.engine.pause import unpause_container
    await _thread(unpause_container, container)


async def remove(root, container, force: bool, volumes: bool) -> None:
    from node.engine.remove import remove_container
    await _thread(remove_container, root, container, force, volumes)


async def prune_containers(root) -> list[str]:
    from node.engine.remove import prune
    return await _thread(prune, root)


def container_pids(container) -> list[int]:
    """PIDs in the container's cgroup."""
    from node.engine import stats
    return stats.pids(container)


def stats_sample(container, pid: int) -> dict:
    """One reading of the cgroup's counters (node.engine.stats.sample's keys)."""
    from node.engine import stats
    return stats.sample(container, pid)


def attachment_json(container) -> dict | None:
    """The live network attachment (docker's NetworkSettings keys), networks connected after
    start included; None when the container is on no bridge network."""
    mode = container.meta["HostConfig"].get("NetworkMode") or "none"
    if mode in ("none", "host"):
        return None
    from node.network import api
    found = api.attachment_of(Path(container.root), container.id)
    return found.to_json() if found is not None else None


# -- volumes ----------------------------------------------------------------------------------

async def volume_create(root, name: str | None, labels: dict) -> dict:
    from node.engine.volumes import create_volume
    return await _thread(create_volume, root, name, False, labels)


def volumes(root) -> list[dict]:
    from node.engine.volumes import list_volumes
    return list_volumes(root)


def volume(root, name: str) -> dict:
    from node.engine.volumes import inspect_volume
    try:
        return _mapped(inspect_volume, root, name)
    except ApiError as e:
        raise not_found(f"get {name}: no such volume") if e.status == 500 else e from None


def volume_users(root, name: str) -> list[str]:
    from node.engine.volumes import users_of
    return users_of(root, name)


async def volume_remove(root, name: str, force: bool) -> None:
    from node.engine.volumes import remove_volume
    volume(root, name)
    users = volume_users(root, name)
    if users and not force:
        raise conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
    await _thread(remove_volume, root, name, True)


# -- files in containers (docker cp) and untrusted tars ---------------------------------------

def archive_stat(container, path: str) -> dict:
    from node.engine import copy
    with copy.root_fd(container) as fd:
        return _mapped(copy.path_stat, fd, path)


def archive_from(container, path: str, out, arcname: str | None = None) -> dict:
    from node.engine import copy
    return _mapped(copy.archive_from, container, path, out, False, arcname)


def changes(container) -> list[tuple[str, str]]:
    from node.engine.changes import container_changes
    return _mapped(container_changes, container)


def archive_into(container, dest_dir: str, src) -> int:
    from node.engine import copy
    return _mapped(copy.archive_into, container, dest_dir, src)


def extract_tar(src, dest: Path) -> int:
    """An untrusted tar (a build context) into the directory ``dest``, by node.tarstream."""
    from node import tarstream
    fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return tarstream.extract(src, fd, keep_owner=False, owner=(0, 0))
    except tarstream.ArchiveError as e:
        raise bad_request(f"invalid build context: {e}") from None
    finally:
        os.close(fd)



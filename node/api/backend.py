"""The one adapter between the Engine API and the rest of the node: every call into
node.engine, node.images, node.network (and node.build) is here, so a reshaped seam costs one
edit. Everything else in node/api speaks Docker's JSON and calls only these functions.

Blocking work (locks, sleeps, registry I/O) runs in threads (``_thread``). Anything that forks
(starting a container's monitor, exec) runs in a worker of node.api.launcher; the functions it
runs are the ``*_in_worker`` ones at the bottom. Library errors become ApiError here, with the
status moby gives the same failure.
"""
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
    from node.engine.status import current_state
    # a removed record reads as a fresh "created" state: look for the record itself first
    if not (container.dir / "container.json").exists():
        return {"Status": "removed"}
    try:
        return current_state(container)
    except FileNotFoundError:
        return {"Status": "removed"}


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


# -- images -----------------------------------------------------------------------------------

def images(root) -> list:
    from node.images.store import ImageStore
    return _mapped(ImageStore(root).list)


def image_inspect(root, ref: str) -> dict:
    from node.images.store import ImageStore
    return _mapped(ImageStore(root).inspect, ref)


def image_tag(root, source: str, target: str) -> None:
    from node.images.store import ImageStore
    from oci.reference import InvalidReference
    try:
        _mapped(ImageStore(root).tag, source, target)
    except InvalidReference as e:
        raise bad_request(str(e)) from None


async def image_remove(root, ref: str, force: bool) -> list[str]:
    from node.engine.usage import images_in_use
    from node.images.store import ImageStore
    return await _thread(lambda: ImageStore(root).remove(ref, force=force, in_use=images_in_use(Path(root))))


async def pull(root, ref: str, platform: str | None, out) -> None:
    """Pull ``ref``; ``out.write`` receives the pull's text lines (from a thread)."""
    from node.images.pull import pull_image
    from oci.reference import InvalidReference
    try:
        await _thread(pull_image, root, ref, platform, False, out)
    except InvalidReference as e:
        raise bad_request(str(e)) from None


async def push(root, ref: str, out) -> str:
    from node.images.push import push_image
    return str(await _thread(push_image, root, ref, False, out))


async def save(root, names: list[str], path: Path) -> None:
    from node.images.archive import save as save_archive
    await _thread(save_archive, root, names, path)


async def load(root, path: Path) -> list[str]:
    from node.images.archive import load as load_archive
    return await _thread(load_archive, root, path)


def scratch_dir(root) -> Path:
    """Where uploads are spooled: the store's ingest dir, on the same disk as the blobs."""
    d = Path(root) / "images" / "content" / "ingest"
    d.mkdir(parents=True, exist_ok=True)
    return d


# -- networks ---------------------------------------------------------------------------------

def networks(root) -> list[dict]:
    from node.network import api, networks as nets
    from node.network.state import Store
    _mapped(api.reclaim, Path(root))
    store = Store(Path(root))
    return [nets.inspect(store, n) for n in store.networks()]


def network(root, ref: str) -> dict:
    from node.network import networks as nets
    from node.network.state import Store
    store = Store(Path(root))
    return _mapped(lambda: nets.inspect(store, nets.find(store, ref, create_default=False)))


async def network_create(root, name: str, subnet: str | None, gateway: str | None) -> dict:
    from node.network import networks as nets
    from node.network.state import Store
    store = Store(Path(root))
    net = await _thread(nets.create, store, name, subnet, gateway)
    return nets.inspect(store, net)


async def network_remove(root, ref: str) -> str:
    from node.network import api, networks as nets
    from node.network.state import Store
    await _thread(api.reclaim, Path(root))
    net = await _thread(nets.remove, Store(Path(root)), ref)
    return net.id


async def network_connect(root, container_ref: str, network_name: str, aliases: list[str], ip) -> None:
    from node.network import api
    await _thread(api.connect, Path(root), container_ref, network_name, aliases, ip)


async def network_disconnect(root, container_ref: str, network_name: str) -> None:
    from node.network import api
    await _thread(api.disconnect, Path(root), container_ref, network_name)


# -- build ------------------------------------------------------------------------------------

def build_available() -> bool:
    try:
        import node.build.executor  # noqa: F401
    except ImportError:
        return False
    return True


def build_in_worker(root: str, context: str, dockerfile: str | None, tags: list[str], build_args: dict,
                    target: str | None, no_cache: bool, pull: bool, network: str, labels: dict,
                    quiet: bool) -> dict:
    """node.build's Builder on an extracted context; progress as plain lines on our stdout.
    RUN steps fork containers: this runs in a launcher worker, never in the server's threads."""
    import sys
    from node.build.dockerfile import DockerfileError
    from node.build.executor import BuildError, BuildOptions, Builder
    from node.build.progress import for_mode
    opts = BuildOptions(context=Path(context), dockerfile=Path(context) / dockerfile if dockerfile else None,
                        tags=tags, build_args=build_args, target=target, no_cache=no_cache, pull=pull,
                        network=network, labels=labels)
    progress = for_mode("plain", quiet, sys.stdout)
    builder = Builder(root, opts, progress)
    try:
        image = builder.build()
    except DockerfileError as e:
        raise bad_request(str(e)) from None
    except BuildError as e:
        lines = "".join(f" > {line}\n" for line in e.tail)
        raise ApiError(400, (f"------\n{lines}------\n" if lines else "") + str(e)) from None
    finally:
        progress.close()
    return {"id": image.id, "unused": sorted(builder.unused_args() or [])}


# -- in a launcher worker (a fresh single-threaded fork; see node/api/launcher.py) ------------

def start_in_worker(root: str, cid: str) -> bool:
    from node.engine.records import find as find_record
    from node.engine.start import start_container
    _mapped(start_container, root, _mapped(find_record, root, cid))
    return True


def exec_in_worker(root: str, cid: str, cmd: list[str], interactive: bool, tty: bool,
                   env: list[str], workdir: str | None, user: str | None) -> int:
    from node.engine.exec_ import exec_in_container
    from node.engine.records import find as find_record
    return _mapped(exec_in_container, _mapped(find_record, root, cid), cmd, interactive, tty,
                   env, workdir, user)


def run_attached_in_worker(root: str, cid: str) -> int:
    """The worker is the container's monitor, attached: fds 0-2 are pipes to a client's hijacked
    connection (stdin in, output out); returns the exit code once the program is gone."""
    from node.engine.records import find as find_record
    from node.engine.start import run_attached
    container = _mapped(find_record, root, cid)
    container.update_state(StoppedByUser=False)
    return _mapped(run_attached, root, container)


WORKER_OPS = {"start": start_in_worker, "exec": exec_in_worker, "build": build_in_worker,
              "run_attached": run_attached_in_worker}


def preload() -> None:
    """Import what workers run, once, in the launcher (each worker then forks ready)."""
    import node.engine.exec_  # noqa: F401
    import node.engine.start  # noqa: F401
    if build_available():
        import node.build.executor  # noqa: F401


def describe(state: dict) -> str:
    """docker ps's STATUS words for a state."""
    from node.engine.status import describe as describe_state
    if state.get("Status") == "removed":
        return "Removal In Progress"
    return describe_state(state)


def add_network_later(container, key: str, network_name: str, aliases: list[str], ip) -> None:
    """For a container that is not running: one more network to join after its next start."""
    record = dict(container.meta)
    later = [n for n in record.get(key) or [] if n["Name"] != network_name]
    record[key] = [*later, {"Name": network_name, "Aliases": list(aliases), "IP": ip}]
    container.save_meta(record)


def set_network(container, network_name: str | None, aliases: list[str]) -> None:
    """For a container that is not running: the network it joins at its next start."""
    record = dict(container.meta)
    host, config = dict(record["HostConfig"]), dict(record["Config"])
    host["NetworkMode"] = network_name or "none"
    config["NetworkAliases"] = list(dict.fromkeys(aliases))
    record.update(HostConfig=host, Config=config)
    container.save_meta(record)


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


# -- registry logins (docker login through the engine) ----------------------------------------

async def login(server: str, username: str, password: str) -> None:
    """Check the credentials against the registry, then keep them where node.images reads them."""
    from node.images import auth
    from node.images.client import RegistryClient

    def work():
        host = server.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
        if host in ("index.docker.io", "registry-1.docker.io", ""):
            host = "docker.io"
        creds = auth.Credentials(username, password)

        async def verify():
            async with RegistryClient(host, credentials=creds) as client:
                await client.ping()
        asyncio.run(verify())
        auth.store(host, creds)
    try:
        await _thread(work)
    except ApiError as e:
        raise ApiError(401, f"login attempt to {server} failed: {e.message}") from None


async def image_prune(root, everything: bool) -> list[str]:
    """Remove dangling images (or, ``everything``, each one no container uses); docker's lines."""
    from node.engine.usage import images_in_use
    from node.images.store import ImageStore

    def work():
        store, in_use, lines = ImageStore(root), images_in_use(Path(root)), []
        for image in store.list():
            if image.id in in_use or (image.repo_tags and not everything):
                continue
            lines += store.remove(image.id, force=True, in_use=in_use)
        return lines
    return await _thread(work)

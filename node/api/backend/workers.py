"""What runs in a launcher worker (node/api/launcher.py): starts, exec, attached starts, builds."""
from __future__ import annotations

from pathlib import Path

from node.api.backend.core import _mapped
from node.api.errors import ApiError, bad_request


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
    """fds 0-2: the client's stdin and output pipes; with a TTY (one output stream) fd 2 is
    instead the pipe of the exec's resizes (execs.resize)."""
    from node.engine.exec_ import exec_in_container
    from node.engine.records import find as find_record
    return _mapped(exec_in_container, _mapped(find_record, root, cid), cmd, interactive, tty,
                   env, workdir, user, resize_fd=2 if tty else None)


def start_attached_in_worker(root: str, cid: str) -> bool:
    """A start whose monitor takes fd 0 (one end of a socketpair, the far end a waiting
    client's attach) as its first attach client: see node/engine/attach.py."""
    import os
    from node.engine.records import find as find_record
    from node.engine.start import spawn_monitor
    container = _mapped(find_record, root, cid)
    container.update_state(StoppedByUser=False)
    _mapped(spawn_monitor, root, container, attach_fd=os.dup(0))
    return True


WORKER_OPS = {"start": start_in_worker, "exec": exec_in_worker, "build": build_in_worker,
              "start_attached": start_attached_in_worker}


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



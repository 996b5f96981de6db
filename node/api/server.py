"""The engine: an aiohttp application serving the Docker Engine API on a unix socket, over the
same records and stores as the `dockyard` CLI (ROOT is the CLI's --root).

    create_app(root, launcher) -> web.Application    routes of every resource module
    serve(root, address, group)                      foreground until SIGINT/SIGTERM

The socket is created mode 0660, owner root and group ``dockyard`` (docker's is root:docker):
members of the group may drive the engine, anyone else gets nothing. If the group does not
exist it is created (groupadd); if that fails the socket stays root-only (0600) with a note.
"""
from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from aiohttp import web

from node.api import (archive, backend, build, container_io, containers, events, execs, images,
                      lifecycle, monitoring, networks, system, volumes)
from node.api.errors import PREPARED, error_middleware
from node.api.launcher import Launcher
from node.api.versions import common_headers, version_middleware

log = logging.getLogger("dockyard.api")
DEFAULT_SOCKET = "/run/dockyard/docker.sock"
SOCKET_GROUP = "dockyard"
MODULES = (system, events, containers, container_io, execs, archive, monitoring, images, networks,
           volumes, build, lifecycle)


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    request[PREPARED] = True
    for key, value in common_headers().items():
        response.headers.setdefault(key, value)


def create_app(root: Path | str, launcher: Launcher) -> web.Application:
    app = web.Application(middlewares=[version_middleware, error_middleware], client_max_size=0)
    app["root"] = Path(root)
    app["launcher"] = launcher
    app["execs"] = {}
    app["pending_attach"] = {}  # container id -> the socket its monitor takes as first attach client (container_io)
    app["background"] = set()
    events.setup(app)
    for module in MODULES:
        module.register(app.router)
    app.on_response_prepare.append(_headers)

    async def reaper(app):
        task = asyncio.create_task(containers.reaper(app))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    app.cleanup_ctx.append(reaper)
    return app


def socket_path(address: str) -> Path:
    if address.startswith("unix://"):
        return Path(address[len("unix://"):])
    if "://" in address:
        raise ValueError(f"only unix:// addresses are supported, not {address!r}")
    return Path(address)


def _group_id(name: str) -> int | None:
    with contextlib.suppress(KeyError):
        return grp.getgrnam(name).gr_gid
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(["groupadd", "--system", name], check=True, capture_output=True, timeout=30)
        return grp.getgrnam(name).gr_gid
    return None


def bind_socket(path: Path, group: str = SOCKET_GROUP) -> socket.socket:
    """A listening unix socket at ``path`` (a stale one is replaced), mode 0660 root:group."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if path.is_socket():
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(str(path))
                probe.close()
                raise OSError(f"another engine is listening on {path}")
            except ConnectionRefusedError:
                path.unlink()
        elif path.exists():
            raise OSError(f"{path} exists and is not a socket")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # never reachable by others, not even between bind and chmod
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    gid = _group_id(group)
    if gid is None:
        print(f"note: group {group!r} does not exist and cannot be created: {path} is root-only (0600)",
              file=sys.stderr)
        os.chmod(path, 0o600)
    else:
        os.chown(path, 0, gid) if os.geteuid() == 0 else None
        os.chmod(path, 0o660)
    sock.listen(128)
    return sock


def _inherited_socket() -> socket.socket | None:
    """systemd socket activation (LISTEN_FDS): the first passed fd, already bound and listening."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or int(os.environ.get("LISTEN_FDS", "0")) < 1:
        return None
    sock = socket.socket(fileno=3)
    os.set_inheritable(3, False)
    return sock


def serve(root: Path | str, address: str = DEFAULT_SOCKET, group: str = SOCKET_GROUP) -> int:
    sock = _inherited_socket()
    # The launcher is forked first, while this process has one thread; it must not keep (or
    # hand on to containers) the listening socket systemd may have passed.
    backend.preload()
    launcher = Launcher(backend.WORKER_OPS)
    launcher.fork(close=[sock.fileno()] if sock is not None else [])
    path = None
    if sock is None:
        path = socket_path(address)
        sock = bind_socket(path, group)
    sock.setblocking(False)
    logging.basicConfig(level=os.environ.get("DOCKYARD_ENGINE_LOG", "WARNING").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    where = f"unix://{path}" if path is not None else "the socket systemd passed"
    print(f"dockyard engine: serving the Docker Engine API on {where} (root {root})",
          file=sys.stderr, flush=True)
    try:
        asyncio.run(_run(create_app(root, launcher), sock))
    finally:
        launcher.close()
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return 0


async def _run(app: web.Application, sock: socket.socket) -> None:
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.SockSite(runner, sock, shutdown_timeout=2)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum, frame):
        if os.getpid() == me:  # a library's fork of this process handles its own signals
            loop.call_soon_threadsafe(stop.set)
    # Not loop.add_signal_handler: it routes signals through a wakeup fd that a process forked
    # by a library in a thread (pyroute2 does) shares, so that child's SIGTERM stopped us.
    me = os.getpid()
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        await stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        await runner.cleanup()

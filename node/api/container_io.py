"""A container's output: ``attach`` (hijacked) and ``logs`` (the json-file log, with
follow/tail/since/timestamps).

Two kinds of attach:
  * with stdin, to a container created with OpenStdin that is not running yet (`docker run
    -i`/`-it`): the attach waits for the start, and the start (containers.start) runs the
    container's monitor *attached* in a launcher worker whose stdin/stdout/stderr are pipes to
    this connection — the CLI's `dockyard run -it` path, so keystrokes reach the program and a
    TTY's output comes back raw. The monitor still writes the json-file log.
  * otherwise: the detached monitor owns the program's stdio; attach follows the json-file log
    from now on until the next exit (so it works for containers the CLI started) and drops
    what the client sends: a detached monitor takes no input from outside.
"""
from __future__ import annotations

import asyncio
import os

from aiohttp import web

from node.api import backend, container_spec
from node.api.containers import RUNNING, _container
from node.api.errors import flag, integer
from node.api.streams import (RAW_STREAM, STDERR, STDOUT, STREAM_NUMBER, done_response, frame,
                              hijack, pump_fd_to, pump_to_fd, stream_response)
from node.api.versions import add_route

ATTACH_POLL = 0.02
FOLLOW_POLL = 0.1


def _encoder(tty: bool, wanted: set[str], timestamps: bool = False, since: float = 0.0):
    def encode(entries: list[dict]) -> bytes:
        out = []
        for e in entries:
            stream = e.get("stream", "stdout")
            if stream not in wanted:
                continue
            if since and container_spec.epoch(e.get("time")) < since:
                continue
            data = e.get("log", "").encode()
            if timestamps:
                data = (e.get("time", "") + " ").encode() + data
            out.append(data if tty else frame(STREAM_NUMBER.get(stream, 1), data))
        return b"".join(out)
    return encode


def _streams(request) -> set[str]:
    return {s for s in ("stdout", "stderr") if flag(request, s)}


async def _drop_input(hijacked) -> None:
    while await hijacked.recv():
        pass


async def attach(request: web.Request) -> web.StreamResponse:
    container = _container(request)
    config = backend.meta(container)["Config"]
    if flag(request, "stdin") and config.get("OpenStdin") and flag(request, "stream") and \
            backend.state(container).get("Status") not in RUNNING and container.id not in request.app["pending_attach"]:
        return await _attach_interactive(request, container, bool(config.get("Tty")))
    tty = bool(config.get("Tty"))
    encode = _encoder(tty, _streams(request))
    log = backend.open_log(container)
    offset = 0 if flag(request, "logs") else log.seek(0, 2)
    follow = flag(request, "stream")
    finished_before = backend.state(container).get("FinishedAt")
    hijacked = await hijack(request, RAW_STREAM)
    reader = asyncio.create_task(_drop_input(hijacked))
    try:
        while True:
            state = backend.state(container)
            entries, offset = backend.read_log(log, offset)
            if not await hijacked.send(encode(entries)) or not follow:
                break
            if state.get("Status") not in RUNNING and state.get("FinishedAt") != finished_before:
                entries, offset = backend.read_log(log, offset)  # what was written before the exit
                await hijacked.send(encode(entries))
                break
            await asyncio.sleep(ATTACH_POLL)
    finally:
        reader.cancel()
        log.close()
        hijacked.close()
    return done_response()


async def _attach_interactive(request, container, tty: bool) -> web.StreamResponse:
    """Pipes for the monitor-to-be; containers.start hands their far ends to the worker."""
    stdin_r, stdin_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pending = request.app["pending_attach"]
    pending[container.id] = (stdin_r, out_w, err_w)
    hijacked = await hijack(request, RAW_STREAM)
    feed = asyncio.create_task(pump_to_fd(hijacked, stdin_w))
    try:
        await asyncio.gather(pump_fd_to(out_r, hijacked.send, None if tty else STDOUT),
                             pump_fd_to(err_r, hijacked.send, None if tty else STDERR))
    finally:
        feed.cancel()
        for fd in pending.pop(container.id, ()):  # never started: ours to close
            os.close(fd)
        hijacked.close()
    return done_response()


async def logs(request: web.Request) -> web.StreamResponse:
    container = _container(request)
    tty = bool(backend.meta(container)["Config"].get("Tty"))
    wanted = _streams(request)
    encode = _encoder(tty, wanted, flag(request, "timestamps"), float(integer(request, "since", 0) or 0))
    tail = request.query.get("tail", "all")
    tail_n = None if tail in ("all", "") else integer(request, "tail", None)
    follow = flag(request, "follow")
    log = backend.open_log(container)
    response = await stream_response(request, RAW_STREAM)
    try:
        entries, offset = backend.read_log(log, 0)
        if tail_n is not None and tail_n >= 0:
            entries = entries[-tail_n:] if tail_n else []
        await response.write(encode(entries))
        while follow:
            running = backend.state(container).get("Status") in RUNNING
            entries, offset = backend.read_log(log, offset)
            if entries:
                await response.write(encode(entries))
            if not running:
                break
            await asyncio.sleep(FOLLOW_POLL)
    finally:
        log.close()
    await response.write_eof()
    return response


def register(router) -> None:
    add_route(router, "POST", "/containers/{id}/attach", attach)
    add_route(router, "GET", "/containers/{id}/logs", logs)

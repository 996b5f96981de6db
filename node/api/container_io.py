"""A container's output: ``attach`` (hijacked) and ``logs`` (the json-file log, with
follow/tail/since/timestamps).

Attach, by the container's state:
  * running: a client of the container's attach socket, served by its monitor
    (node/engine/attach.py, bridged by attach_bridge.py): live output, stdin when asked for and
    the container has OpenStdin, with a TTY the detach keys (``detachKeys``, default
    ctrl-p,ctrl-q; without one the daemon copies stdin as it is, and so do we);
    ``logs=1`` first replays the json-file log.
  * not running yet, with stdin (`docker run -i`/`-it`): a socketpair whose far end waits in
    app["pending_attach"]; the start (containers.start) hands it to the detached monitor as a
    client attached from the first byte, so the program's first output is not missed and a
    detach leaves the container running.
  * otherwise (no stdin, not running: `docker run` without -i attaches before its start): the
    json-file log followed from now on until the next exit.
"""
from __future__ import annotations

import asyncio
import os

from aiohttp import web

from node.api import backend, container_spec
from node.api.attach_bridge import bridge
from node.api.containers import RUNNING, _container
from node.api.errors import flag, integer
from node.api.streams import RAW_STREAM, STREAM_NUMBER, done_response, frame, hijack, stream_response
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
    tty = bool(config.get("Tty"))
    stdin = flag(request, "stdin") and bool(config.get("OpenStdin"))
    running = backend.state(container).get("Status") in RUNNING
    if stdin and flag(request, "stream") and not running and container.id not in request.app["pending_attach"]:
        return await _attach_before_start(request, container, tty)
    if running and flag(request, "stream"):
        scanner = backend.detach_scanner(request.query.get("detachKeys")) if stdin and tty else None
        streams = _streams(request)
        sock = await asyncio.to_thread(backend.attach_connect, container, stdin, "stdout" in streams,
                                       "stderr" in streams)
        if sock is not None:
            return await _attach_live(request, container, sock, tty, stdin, scanner)
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


async def _attach_live(request, container, sock, tty: bool, stdin: bool, scanner) -> web.StreamResponse:
    try:
        replay = b""
        if flag(request, "logs"):
            log = backend.open_log(container)
            try:
                entries, _ = backend.read_log(log, 0)
            finally:
                log.close()
            replay = _encoder(tty, _streams(request))(entries)
        hijacked = await hijack(request, RAW_STREAM)
    except BaseException:
        sock.close()
        raise
    try:
        await hijacked.send(replay)
        await bridge(hijacked, sock, tty, stdin, scanner)
    finally:
        hijacked.close()
    return done_response()


async def _attach_before_start(request, container, tty: bool) -> web.StreamResponse:
    """One end for the monitor-to-be (containers.start hands it over), the other bridged here."""
    import socket
    scanner = backend.detach_scanner(request.query.get("detachKeys")) if tty else None
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pending = request.app["pending_attach"]
    pending[container.id] = theirs.detach()
    try:
        hijacked = await hijack(request, RAW_STREAM)
        try:
            await bridge(hijacked, ours, tty, True, scanner)
        finally:
            hijacked.close()
    finally:
        ours.close()
        fd = pending.pop(container.id, None)
        if fd is not None:  # never started: ours to close
            os.close(fd)
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

"""A container's output: ``attach`` (hijacked; streams what the program writes from now on,
until its next exit) and ``logs`` (the json-file log, with follow/tail/since/timestamps).

The detached monitor owns the program's stdio and writes the json-file log; both endpoints
read that log, so they work the same for containers started by the CLI. Stdin is not carried
to a detached container (the monitor holds its stdin open but takes no input from outside):
attach reads and drops what the client sends, and `docker run -i` gets no input.
"""
from __future__ import annotations

import asyncio

from aiohttp import web

from node.api import backend, container_spec
from node.api.containers import RUNNING, _container
from node.api.errors import flag, integer
from node.api.streams import (RAW_STREAM, STREAM_NUMBER, done_response, frame, hijack,
                              stream_response)
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
    tty = bool(backend.meta(container)["Config"].get("Tty"))
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

"""Exec: ``POST /containers/{id}/exec`` records what to run, ``POST /exec/{id}/start`` runs it
(hijacked unless detached), ``GET /exec/{id}/json`` tells how it went.

The process is started by a launcher worker (node/api/launcher.py) with three pipes as its
stdin, stdout and stderr; this module copies the client's bytes into the first and the other
two out as frames (or raw, with a TTY, whose terminal the engine's exec makes inside the
worker: then the third pipe goes the other way and carries ``/exec/{id}/resize`` to it). Exec records live in memory, like the daemon's: they do not survive the engine.
"""
from __future__ import annotations

import asyncio
import os

from aiohttp import web

from node.api import backend
from node.api.containers import _container
from node.api.errors import bad_request, conflict, integer, json_response, not_found, read_json
from node.api.streams import RAW_STREAM, STDERR, STDOUT, done_response, frame, hijack, pump_fd_to, pump_to_fd
from node.api.versions import add_route


async def create(request: web.Request) -> web.Response:
    container = _container(request)
    body = await read_json(request)
    cmd = body.get("Cmd")
    if isinstance(cmd, str):
        cmd = [cmd]
    if not cmd or not isinstance(cmd, list):
        raise bad_request("No exec command specified")
    state = backend.state(container)
    if state.get("Status") == "paused":
        raise conflict(f"Container {container.id} is paused, unpause the container before exec")
    if state.get("Status") != "running":
        raise conflict(f"Container {container.id} is not running")
    exec_id = os.urandom(32).hex()
    request.app["execs"][exec_id] = {
        "ID": exec_id, "ContainerID": container.id, "Running": False, "ExitCode": None, "Pid": 0,
        "OpenStdin": bool(body.get("AttachStdin")), "OpenStdout": bool(body.get("AttachStdout", True)),
        "OpenStderr": bool(body.get("AttachStderr", True)), "CanRemove": False,
        "DetachKeys": body.get("DetachKeys") if isinstance(body.get("DetachKeys"), str) else "",
        "ProcessConfig": {"tty": bool(body.get("Tty")), "entrypoint": cmd[0], "arguments": cmd[1:],
                          "privileged": bool(body.get("Privileged")), "user": body.get("User") or ""},
        "_env": [e for e in body.get("Env") or [] if isinstance(e, str)],
        "_workdir": body.get("WorkingDir") or None, "_user": body.get("User") or None,
    }
    return json_response({"Id": exec_id}, status=201)


def _exec(request) -> dict:
    record = request.app["execs"].get(request.match_info["id"])
    if record is None:
        raise not_found(f"No such exec instance: {request.match_info['id']}")
    return record


def _public(record: dict) -> dict:
    return {k: v for k, v in record.items() if not k.startswith("_")}


async def start(request: web.Request) -> web.StreamResponse:
    record = _exec(request)
    body = await read_json(request)
    if record["Running"] or record["ExitCode"] is not None:
        raise conflict(f"Exec {record['ID']} has already run")
    tty = bool(body.get("Tty", record["ProcessConfig"]["tty"]))
    detach = bool(body.get("Detach"))
    interactive = record["OpenStdin"] and not detach
    # docker's detach keys are a terminal's: with a TTY, typing them leaves the process running
    scanner = backend.detach_scanner(record["DetachKeys"]) if interactive and tty else None
    process = record["ProcessConfig"]
    args = {"root": str(request.app["root"]), "cid": record["ContainerID"],
            "cmd": [process["entrypoint"], *process["arguments"]], "interactive": interactive,
            "tty": tty, "env": record["_env"], "workdir": record["_workdir"], "user": record["_user"]}
    stdin_r, stdin_w = os.pipe() if interactive else (os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), None)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    # with a TTY there is one output stream: the third pipe carries resizes the other way
    # (execs.resize -> the worker: see exec_in_worker)
    theirs, ours = (err_r, err_w) if tty else (err_w, err_r)
    hijacked = None if detach else await hijack(request, RAW_STREAM)
    try:
        reply = request.app["launcher"].send("exec", args, (stdin_r, out_w, theirs))
    except BaseException:
        for fd in (stdin_r, stdin_w, out_r, out_w, err_r, err_w):
            if fd is not None:
                os.close(fd)
        if hijacked:
            hijacked.close()
        raise
    for fd in (stdin_r, out_w, theirs):
        os.close(fd)
    if tty:
        record["_resize"] = ours
        os.set_blocking(ours, False)
    record["Running"] = True
    job = asyncio.create_task(_carry(request.app, record, reply, _DetachWatch(hijacked, scanner) if hijacked else None,
                                     stdin_w, out_r, None if tty else ours, tty))
    if detach:
        request.app["background"].add(job)
        job.add_done_callback(request.app["background"].discard)
        return web.Response(status=200)
    await job
    return done_response()


class _DetachWatch:
    """The hijacked connection, its input watched for the detach keys: once typed the client is
    let go and the process's output is drained to nowhere until it exits."""

    def __init__(self, hijacked, scanner) -> None:
        self.hijacked, self.scanner, self.detached = hijacked, scanner, False

    async def recv(self) -> bytes:
        while not self.detached:
            data = await self.hijacked.recv()
            if not data or self.scanner is None:
                return data
            data, self.detached = self.scanner.feed(data)
            if self.detached:
                self.hijacked.close()
            if data:
                return data
        return b""

    async def send(self, data: bytes) -> bool:
        return True if self.detached else await self.hijacked.send(data)

    def close(self) -> None:
        self.hijacked.close()


async def _carry(app, record, reply, hijacked, stdin_w, out_r, err_r, tty) -> None:
    async def discard(data: bytes) -> bool:
        return True
    write = hijacked.send if hijacked else discard
    feed = asyncio.create_task(pump_to_fd(hijacked, stdin_w)) if stdin_w is not None else None
    result = {"error": "exec interrupted", "status": 500}
    try:
        if tty:
            await pump_fd_to(out_r, write, None)
        else:
            await asyncio.gather(pump_fd_to(out_r, write, STDOUT), pump_fd_to(err_r, write, STDERR))
        result = await app["launcher"].result(reply)
        if "error" in result and hijacked:
            text = result["error"].encode() + b"\n"
            await write(text if tty else frame(STDERR, text))
    finally:
        if feed is not None:
            feed.cancel()
        if hijacked:
            hijacked.close()
        record["Running"] = False
        record["ExitCode"] = 126 if "error" in result else int(result["ok"])
        resize_fd = record.pop("_resize", None)
        if resize_fd is not None:
            os.close(resize_fd)


async def inspect(request: web.Request) -> web.Response:
    return json_response(_public(_exec(request)))


async def resize(request: web.Request) -> web.Response:
    """A "ROWS COLS" line on the exec's resize pipe; its worker applies it to the pty."""
    record = _exec(request)
    rows, cols = integer(request, "h", 0), integer(request, "w", 0)
    fd = record.get("_resize")
    if fd is not None and rows > 0 and cols > 0:
        try:
            os.write(fd, f"{rows} {cols}\n".encode())
        except (BlockingIOError, BrokenPipeError):
            pass  # a full pipe: the worker is behind by 400 resizes; the next one will do
    return web.Response(status=200)


def register(router) -> None:
    add_route(router, "POST", "/containers/{id}/exec", create)
    add_route(router, "POST", "/exec/{id}/start", start)
    add_route(router, "POST", "/exec/{id}/resize", resize)
    add_route(router, "GET", "/exec/{id}/json", inspect)

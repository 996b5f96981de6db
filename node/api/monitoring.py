"""``/containers/{id}/top`` and ``/containers/{id}/stats`` (one reading with ``stream=false``,
else one per second), from the container's cgroup through node.engine.stats.

Docker's clients compute CPU % themselves from ``cpu_stats`` and ``precpu_stats`` (the reading
before), so each document carries both; the first streamed one has an empty ``precpu_stats``
unless the caller asked for a one-shot-less single reading, which waits one interval as
dockerd does.
"""
from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime, timezone

from aiohttp import web

from node.api import backend
from node.api.containers import _container
from node.api.errors import ApiError, flag, json_response
from node.api.streams import stream_response
from node.api.versions import add_route

INTERVAL = 1.0
ZERO_TIME = "0001-01-01T00:00:00Z"


def _running_pid(container) -> int:
    state = backend.state(container)
    return state.get("Pid", 0) if state.get("Status") in ("running", "paused") else 0


async def top(request: web.Request) -> web.Response:
    container = _container(request)
    if not _running_pid(container):
        raise ApiError(409, f"Container {container.id} is not running")
    rows = []
    for pid in backend.container_pids(container):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{pid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        rows.append([fields.get("Uid", "0").split()[0], str(pid), fields.get("PPid", "0").strip(), cmd])
    return json_response({"Titles": ["UID", "PID", "PPID", "CMD"], "Processes": rows})


def _iso(t: float | None) -> str:
    if not t:
        return ZERO_TIME
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


def _cpu(s: dict | None) -> dict:
    if not s:
        return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
    return {"cpu_usage": {"total_usage": s["cpu_ns"], "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "system_cpu_usage": s["host_ns"], "online_cpus": os.cpu_count() or 1,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def stats_doc(container, name: str, now: dict | None, before: dict | None) -> dict:
    now = now or {}
    read, write = now.get("blk", (0, 0))
    rx, tx = now.get("net", (0, 0))
    return {
        "read": _iso(now.get("time")), "preread": _iso((before or {}).get("time")),
        "id": container.id, "name": "/" + name, "num_procs": 0,
        "pids_stats": {"current": now.get("pids", 0)},
        "cpu_stats": _cpu(now or None), "precpu_stats": _cpu(before),
        "memory_stats": {"usage": now.get("mem", 0), "limit": now.get("limit", 0), "stats": {}} if now else {},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"major": 0, "minor": 0, "op": "read", "value": read},
            {"major": 0, "minor": 0, "op": "write", "value": write}]},
        "networks": {"eth0": {"rx_bytes": rx, "tx_bytes": tx, "rx_packets": 0, "tx_packets": 0,
                              "rx_errors": 0, "tx_errors": 0, "rx_dropped": 0, "tx_dropped": 0}},
        "storage_stats": {},
    }


async def _sample(container):
    pid = _running_pid(container)
    return await asyncio.to_thread(backend.stats_sample, container, pid) if pid else None


async def stats(request: web.Request) -> web.StreamResponse:
    container = _container(request)
    name = backend.meta(container)["Name"]
    if not flag(request, "stream", True):
        before = None if flag(request, "one-shot") else await _sample(container)
        if before is not None:
            await asyncio.sleep(INTERVAL / 2)
        return json_response(stats_doc(container, name, await _sample(container), before))
    response = await stream_response(request, "application/json")
    before = None
    while True:
        now = await _sample(container)
        await response.write(json.dumps(stats_doc(container, name, now, before)).encode() + b"\n")
        if now is None and before is None and not _running_pid(container):
            break
        before = now
        await asyncio.sleep(INTERVAL)
    await response.write_eof()
    return response


def register(router) -> None:
    add_route(router, "GET", "/containers/{id}/top", top)
    add_route(router, "GET", "/containers/{id}/stats", stats)

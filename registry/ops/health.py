"""/healthz: the process answers. /readyz: the index database and the storage answer too
(503 with the failing part named otherwise), for load balancers and Kubernetes probes."""
from __future__ import annotations

import asyncio

from aiohttp import web
from sqlalchemy import text

from oci.digest import Digest

from .. import state

PROBE_TIMEOUT = 5.0
_PROBE_DIGEST = Digest.of(b"dockyard readiness probe")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    idx, storage = request.app.get(state.INDEX), request.app.get(state.STORAGE)
    try:
        await asyncio.wait_for(idx.db.read(lambda conn: conn.execute(text("SELECT 1")).scalar()), PROBE_TIMEOUT)
        checks["database"] = "ok"
    except Exception as e:
        checks["database"] = f"failed: {e.__class__.__name__}"
    try:
        await asyncio.wait_for(storage.stat(_PROBE_DIGEST), PROBE_TIMEOUT)
        checks["storage"] = "ok"
    except Exception as e:
        checks["storage"] = f"failed: {e.__class__.__name__}"
    ok = all(v == "ok" for v in checks.values())
    return web.json_response({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)

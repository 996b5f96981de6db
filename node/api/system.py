"""System endpoints: ``/_ping`` (HEAD and GET), ``/version``, ``/info``, ``/system/df``."""
from __future__ import annotations

import asyncio
import os
import platform

from aiohttp import web

from node import hostinfo
from node.api import backend
from node.api.errors import bad_request, json_response, read_json
from node.api.versions import ENGINE_VERSION, add_route, version_doc


async def ping(request: web.Request) -> web.Response:
    headers = {"Builder-Version": "1", "Cache-Control": "no-cache, no-store, must-revalidate",
               "Pragma": "no-cache"}
    if request.method == "HEAD":
        return web.Response(status=200, headers={**headers, "Content-Type": "text/plain; charset=utf-8",
                                                 "Content-Length": "0"})
    return web.Response(text="OK", headers=headers)


async def version(request: web.Request) -> web.Response:
    return json_response(version_doc())


def _info(root) -> dict:
    states = [backend.state(c).get("Status") for c in backend.containers(root)]
    uname = platform.uname()
    mem = hostinfo.mem_total()
    return {
        "ID": "dockyard", "Name": uname.node, "ServerVersion": ENGINE_VERSION,
        "Containers": len(states), "ContainersRunning": states.count("running"),
        "ContainersPaused": states.count("paused"),
        "ContainersStopped": sum(1 for s in states if s not in ("running", "paused")),
        "Images": len(backend.images(root)), "Driver": "overlay", "DriverStatus": [],
        "DockerRootDir": str(root), "OperatingSystem": "Dockyard on " + hostinfo.os_name(), "OSType": "linux",
        "OSVersion": "", "Architecture": uname.machine, "KernelVersion": uname.release,
        "NCPU": os.cpu_count() or 1, "MemTotal": mem, "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1",
        "LoggingDriver": "json-file", "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"],
                                                  "Log": ["json-file"]},
        "Runtimes": {"builtin": {"path": "dockyard"}, "runc": {"path": "runc"}, "crun": {"path": "crun"}},
        "DefaultRuntime": "builtin", "Swarm": {"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": ""},
        "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": []},
        "SecurityOptions": ["name=seccomp,profile=builtin"], "Labels": [], "ExperimentalBuild": False,
        "HttpProxy": "", "HttpsProxy": "", "NoProxy": "", "Debug": False, "Warnings": None,
        "IndexServerAddress": "https://index.docker.io/v1/", "LiveRestoreEnabled": True,
    }


async def info(request: web.Request) -> web.Response:
    return json_response(await asyncio.to_thread(_info, request.app["root"]))


def _df(root) -> dict:
    from node.api.images import summary
    from node.api.containers import docker_inspect
    from node.api import container_spec
    images = [summary(i) for i in backend.images(root)]
    containers = []
    for c in backend.containers(root):
        try:
            doc = docker_inspect(c)
        except Exception:  # noqa: BLE001
            continue
        containers.append({**container_spec.ps_entry(backend.meta(c), doc, backend.describe(backend.state(c))),
                           "SizeRw": 0, "SizeRootFs": 0})
    volumes = [{**v, "UsageData": {"Size": -1, "RefCount": len(backend.volume_users(root, v["Name"]))}}
               for v in backend.volumes(root)]
    return {"LayersSize": sum(i["Size"] for i in images), "Images": images, "Containers": containers,
            "Volumes": volumes, "BuildCache": []}


async def df(request: web.Request) -> web.Response:
    return json_response(await asyncio.to_thread(_df, request.app["root"]))


async def login(request: web.Request) -> web.Response:
    body = await read_json(request)
    username, password = body.get("username") or "", body.get("password") or ""
    if not username or not password:
        raise bad_request("username and password are required (identity tokens are not supported)")
    await backend.login(body.get("serveraddress") or "docker.io", username, password)
    return json_response({"Status": "Login Succeeded", "IdentityToken": ""})


def register(router) -> None:
    add_route(router, "GET", "/_ping", ping)
    add_route(router, "HEAD", "/_ping", ping)
    add_route(router, "GET", "/version", version)
    add_route(router, "GET", "/info", info)
    add_route(router, "GET", "/system/df", df)
    add_route(router, "POST", "/auth", login)

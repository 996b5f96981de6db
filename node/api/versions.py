"""Version negotiation as the docker CLI and docker-py expect it.

Clients first ask ``/_ping`` (HEAD or GET) and read its ``API-Version`` header, then prefix every
call with ``/v1.xx/``. Dockyard advertises API_VERSION (Docker 29's CLI refuses a server below
1.44) and serves every version from MIN_API_VERSION up, as the daemon does: the paths are the
same, so the prefix is stripped here and handlers never see it. A version below the minimum is
docker's 400 with docker's words; a version above ours is served as ours (clients negotiate
down, and the daemon does the same for newer clients).
"""
from __future__ import annotations

import platform

from aiohttp import web

from node.api.errors import error_response

API_VERSION = "1.44"
MIN_API_VERSION = "1.24"
ENGINE_VERSION = "0.1.0-dockyard"


def _tuple(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def common_headers() -> dict[str, str]:
    return {"Api-Version": API_VERSION, "Docker-Experimental": "false", "Ostype": "linux",
            "Server": f"Dockyard/{ENGINE_VERSION} (linux)"}


VERSION_PLACEHOLDER = r"/{api_version:v[0-9]+\.[0-9]+}"


def add_route(router: web.UrlDispatcher, method: str, path: str, handler) -> None:
    """``path`` and ``/v1.xx`` + ``path``: the same handler serves both."""
    router.add_route(method, path, handler)
    router.add_route(method, VERSION_PLACEHOLDER + path, handler)


def asked_version(request: web.Request) -> tuple[int, int]:
    text = request.match_info.get("api_version")
    return _tuple(text[1:]) if text else _tuple(API_VERSION)


@web.middleware
async def version_middleware(request: web.Request, handler):
    text = request.match_info.get("api_version")
    if text and _tuple(text[1:]) < _tuple(MIN_API_VERSION):
        return _stamp(error_response(
            400, f"client version {text[1:]} is too old. Minimum supported API version is "
                 f"{MIN_API_VERSION}, please upgrade your client to a newer version"))
    return _stamp(await handler(request))


def _stamp(response):
    if isinstance(response, web.StreamResponse) and not response.prepared:
        for key, value in common_headers().items():
            response.headers.setdefault(key, value)
    return response


def version_doc() -> dict:
    uname = platform.uname()
    return {
        "Platform": {"Name": "Dockyard Engine"},
        "Components": [{"Name": "Engine", "Version": ENGINE_VERSION,
                        "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                                    "Os": "linux", "Arch": _arch()}}],
        "Version": ENGINE_VERSION, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "", "GoVersion": f"python{platform.python_version()}", "Os": "linux",
        "Arch": _arch(), "KernelVersion": uname.release, "BuildTime": "",
    }


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)

"""``/containers/{id}/archive`` (what `docker cp` uses): HEAD stats a path, GET returns it as a
tar, PUT extracts a tar into a directory — inside a running container's filesystem, volumes
included, through /proc/PID/root.

Every path is resolved under that root with node.runtime.mounts.secure_join (the container's
symlinks can never lead to the host's files), and extraction writes entry by entry: no absolute
names or ``..``, no writing through a link, only files, directories and symlinks (device nodes
and hard links are refused), never tarfile.extractall. A stopped container is a 409: its
filesystem is not mounted (docker copies from it; Dockyard does not yet).
"""
from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import stat
import tarfile
import tempfile
from datetime import datetime, timezone

from aiohttp import web

from node.api import backend
from node.api.containers import _container
from node.api.errors import ApiError, bad_request, not_found
from node.api.versions import add_route


def _root_of(container) -> str:
    state = backend.state(container)
    pid = state.get("Pid") or 0
    if state.get("Status") not in ("running", "paused") or not pid:
        raise ApiError(409, f"container {container.id[:12]} is not running: Dockyard copies "
                            "files only to and from running containers")
    return f"/proc/{pid}/root"


def _resolve(root: str, path: str) -> str:
    from node.runtime.mounts import secure_join
    if not path:
        raise bad_request("path is required")
    return secure_join(root, path if path.startswith("/") else "/" + path)


def _stat_header(host: str, path: str) -> str:
    st = os.lstat(host)
    mode = stat.S_IMODE(st.st_mode) | (0x80000000 if stat.S_ISDIR(st.st_mode) else 0) \
        | (0x8000000 if stat.S_ISLNK(st.st_mode) else 0)
    doc = {"name": os.path.basename(path.rstrip("/")) or "/", "size": st.st_size, "mode": mode,
           "mtime": datetime.fromtimestamp(st.st_mtime, timezone.utc).isoformat().replace("+00:00", "Z"),
           "linkTarget": os.readlink(host) if stat.S_ISLNK(st.st_mode) else ""}
    return base64.b64encode(json.dumps(doc).encode()).decode()


def _lookup(request):
    container = _container(request)
    path = request.query.get("path", "")
    host = _resolve(_root_of(container), path)
    if not os.path.lexists(host):
        raise not_found(f"Could not find the file {path} in container {request.match_info['id']}")
    return host, path


async def head(request: web.Request) -> web.Response:
    host, path = _lookup(request)
    return web.Response(status=200, headers={"X-Docker-Container-Path-Stat": _stat_header(host, path)})


async def get(request: web.Request) -> web.StreamResponse:
    host, path = _lookup(request)
    name = os.path.basename(path.rstrip("/")) or "."
    spool = tempfile.TemporaryFile()

    def pack():
        with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(host, arcname=name, recursive=True)  # adds links as links, never follows
        spool.seek(0)
    try:
        await asyncio.to_thread(pack)
        response = web.StreamResponse(headers={"Content-Type": "application/x-tar",
                                               "X-Docker-Container-Path-Stat": _stat_header(host, path)})
        await response.prepare(request)
        while chunk := await asyncio.to_thread(spool.read, 1 << 20):
            await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        spool.close()


def extract_into(tar: tarfile.TarFile, root: str, dest: str) -> None:
    """Each entry of ``tar`` written under ``dest`` as seen from ``root`` (never outside it)."""
    from node.runtime.mounts import secure_join
    for member in tar:
        name = member.name.lstrip("./") if member.name not in (".", "./") else ""
        parts = [p for p in name.split("/") if p]
        if ".." in parts or member.name.startswith("/"):
            raise bad_request(f"refusing archive entry {member.name!r}: it leaves the destination")
        if not parts:
            continue
        target = secure_join(root, os.path.join(dest, *parts))
        parent = os.path.dirname(target)
        os.makedirs(parent, exist_ok=True)
        if member.isdir():
            if not os.path.isdir(target):
                os.mkdir(target, member.mode & 0o7777)
        elif member.isfile():
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                         member.mode & 0o7777)
            with os.fdopen(fd, "wb") as out, tar.extractfile(member) as src:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
        elif member.issym():
            if os.path.lexists(target):
                os.unlink(target)
            os.symlink(member.linkname, target)
            continue
        else:
            raise bad_request(f"refusing archive entry {member.name!r}: only files, directories and symlinks")
        os.lchown(target, member.uid, member.gid)
        os.chmod(target, member.mode & 0o7777)


async def put(request: web.Request) -> web.Response:
    container = _container(request)
    root = _root_of(container)
    path = request.query.get("path", "")
    dest = _resolve(root, path)
    if not os.path.isdir(dest):
        raise not_found(f"Could not find the file {path} in container {request.match_info['id']}")
    body = io.BytesIO(await request.read())

    def unpack():
        try:
            with tarfile.open(fileobj=body, mode="r:*") as tar:
                extract_into(tar, root, dest[len(root):] or "/")
        except tarfile.TarError as e:
            raise bad_request(f"invalid tar archive: {e}") from None
    await asyncio.to_thread(unpack)
    return web.Response(status=200)


def register(router) -> None:
    add_route(router, "HEAD", "/containers/{id}/archive", head)
    add_route(router, "GET", "/containers/{id}/archive", get)
    add_route(router, "PUT", "/containers/{id}/archive", put)

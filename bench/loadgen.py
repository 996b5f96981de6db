"""Concurrent load from one asyncio process (aiohttp): small blob pushes, and the bulk set-up of
tags and repositories for the listing benchmarks. The same code drives every registry.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from urllib.parse import urlsplit

import aiohttp

from bench.oci_http import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _next(location: str) -> str:
    parts = urlsplit(location)
    return parts.path + ("?" + parts.query if parts.query else "")


async def _push_blob(session: aiohttp.ClientSession, base: str, name: str, data: bytes) -> str:
    digest = _digest(data)
    async with session.post(f"{base}/v2/{name}/blobs/uploads/") as resp:
        if resp.status != 202:
            raise RuntimeError(f"POST upload -> {resp.status}: {(await resp.text())[:200]}")
        location = _next(resp.headers["Location"])
    sep = "&" if "?" in location else "?"
    async with session.put(f"{base}{location}{sep}digest={digest}", data=data,
                           headers={"Content-Type": "application/octet-stream"}) as resp:
        if resp.status != 201:
            raise RuntimeError(f"PUT upload -> {resp.status}: {(await resp.text())[:200]}")
        await resp.read()
    return digest


def _session(connections: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections, force_close=False),
                                 timeout=aiohttp.ClientTimeout(total=120))


async def _small_pushes(port: int, clients: int, seconds: float, size: int) -> float:
    base = f"http://127.0.0.1:{port}"
    count = 0
    async with _session(clients) as session:
        deadline = time.perf_counter() + seconds
        start = time.perf_counter()

        async def worker(i: int) -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                await _push_blob(session, base, f"bench/small{i}", os.urandom(size))
                count += 1

        await asyncio.gather(*(worker(i) for i in range(clients)))
        elapsed = time.perf_counter() - start
    return count / elapsed


def small_pushes_per_s(port: int, clients: int = 8, seconds: float = 10, size: int = 4096) -> float:
    """Pushes (POST + PUT with the body) of distinct `size`-byte blobs per second."""
    return asyncio.run(_small_pushes(port, clients, seconds, size))


async def _image(session, base: str, name: str, salt: str) -> bytes:
    layer = b"layer:" + salt.encode()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]}, "config": {}}).encode()
    layer_digest = await _push_blob(session, base, name, layer)
    config_digest = await _push_blob(session, base, name, config)
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer_digest, "size": len(layer)}],
    }).encode()


async def _put_manifest(session, base: str, name: str, tag: str, manifest: bytes) -> None:
    async with session.put(f"{base}/v2/{name}/manifests/{tag}", data=manifest,
                           headers={"Content-Type": OCI_MANIFEST}) as resp:
        if resp.status != 201:
            raise RuntimeError(f"PUT manifest {name}:{tag} -> {resp.status}: {(await resp.text())[:200]}")
        await resp.read()


async def _bounded(jobs, concurrency: int) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(job):
        async with sem:
            await job()

    await asyncio.gather(*(one(j) for j in jobs))


async def _many_tags(port: int, name: str, tags: int, concurrency: int) -> None:
    base = f"http://127.0.0.1:{port}"
    async with _session(concurrency) as session:
        manifest = await _image(session, base, name, "tags")
        await _bounded([lambda t=t: _put_manifest(session, base, name, f"t{t:05d}", manifest)
                        for t in range(tags)], concurrency)


async def _many_repos(port: int, prefix: str, repos: int, concurrency: int) -> None:
    base = f"http://127.0.0.1:{port}"
    async with _session(concurrency) as session:
        async def one(i: int) -> None:
            name = f"{prefix}/r{i:05d}"
            await _put_manifest(session, base, name, "latest", await _image(session, base, name, str(i)))
        await _bounded([lambda i=i: one(i) for i in range(repos)], concurrency)


async def _manifest_puts(port: int, clients: int, seconds: float) -> float:
    """Each client pushes one image's blobs once, then PUTs distinct manifests of it (an
    annotation changes per PUT, so every PUT is new content) under a new tag each time."""
    base = f"http://127.0.0.1:{port}"
    count = 0
    async with _session(clients) as session:
        images = [json.loads(await _image(session, base, f"bench/mput{i}", f"m{i}")) for i in range(clients)]
        deadline = time.perf_counter() + seconds
        start = time.perf_counter()

        async def worker(i: int) -> None:
            nonlocal count
            n = 0
            while time.perf_counter() < deadline:
                manifest = dict(images[i], annotations={"bench.put": f"{i}-{n}"})
                await _put_manifest(session, base, f"bench/mput{i}", f"p{n}", json.dumps(manifest).encode())
                n += 1
                count += 1

        await asyncio.gather(*(worker(i) for i in range(clients)))
        elapsed = time.perf_counter() - start
    return count / elapsed


def manifest_puts_per_s(port: int, clients: int = 8, seconds: float = 10) -> float:
    """Manifest PUTs (distinct content, each with a new tag) per second from `clients` clients."""
    return asyncio.run(_manifest_puts(port, clients, seconds))


def many_tags(port: int, name: str, tags: int, concurrency: int = 8) -> None:
    asyncio.run(_many_tags(port, name, tags, concurrency))


def many_repos(port: int, prefix: str, repos: int, concurrency: int = 8) -> None:
    asyncio.run(_many_repos(port, prefix, repos, concurrency))

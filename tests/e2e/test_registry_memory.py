"""A 1 GiB blob pushed (chunked, then monolithically) and pulled back with bounded server memory.

The test never holds the blob either: bytes are generated block by block from a seed, hashed
on the fly, streamed to the registry and hashed again as they come back. The server's peak
resident set (VmHWM in /proc/PID/status) must stay far below the blob's size.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.parse
from typing import Iterator

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

GIB = 1 << 30
BLOCK = 1 << 20
PATCH_SIZE = 256 << 20
RSS_LIMIT_MIB = 200


def blocks(seed: int, start: int = 0, end: int = GIB) -> Iterator[bytes]:
    """Bytes [start, end) of a deterministic 1 GiB stream: a random block, numbered per MiB."""
    base = hashlib.sha256(str(seed).encode()).digest() * (BLOCK // 32)
    for n in range(start // BLOCK, end // BLOCK):
        yield n.to_bytes(8, "big") + base[8:]


def digest_of(seed: int) -> str:
    h = hashlib.sha256()
    for b in blocks(seed):
        h.update(b)
    return "sha256:" + h.hexdigest()


def path_of(location: str) -> str:
    parts = urllib.parse.urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def send(conn: http.client.HTTPConnection, method: str, url: str, body=None, length: int = 0,
         headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    conn.putrequest(method, url)
    for k, v in {"Content-Length": str(length), "Content-Type": "application/octet-stream", **(headers or {})}.items():
        conn.putheader(k, v)
    conn.endheaders()
    for chunk in body or ():
        conn.send(chunk)
    r = conn.getresponse()
    r.read()
    return r


def pull_digest(conn: http.client.HTTPConnection, url: str) -> tuple[str, int]:
    conn.request("GET", url)
    r = conn.getresponse()
    assert r.status == 200, r.status
    h, size = hashlib.sha256(), 0
    while chunk := r.read(BLOCK):
        h.update(chunk)
        size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def test_one_gib_push_and_pull_with_bounded_memory(dockyard_registry, record_property):
    reg = dockyard_registry()
    idle_mib = reg.peak_rss_kib() / 1024
    conn = http.client.HTTPConnection(reg.host, timeout=120)
    repo = "big/blob"

    # Chunked: POST, four 256 MiB PATCHes with Content-Range, PUT ?digest=.
    chunked = digest_of(1)
    r = send(conn, "POST", f"/v2/{repo}/blobs/uploads/")
    assert r.status == 202
    location = path_of(r.headers["Location"])
    for start in range(0, GIB, PATCH_SIZE):
        end = start + PATCH_SIZE
        r = send(conn, "PATCH", location, blocks(1, start, end), PATCH_SIZE, {"Content-Range": f"{start}-{end - 1}"})
        assert r.status == 202, r.status
        assert r.headers["Range"] == f"0-{end - 1}"
        location = path_of(r.headers["Location"])
    sep = "&" if "?" in location else "?"
    r = send(conn, "PUT", f"{location}{sep}digest={chunked}")
    assert r.status == 201, r.status

    # Monolithic: one POST ?digest= carrying the whole GiB.
    mono = digest_of(2)
    r = send(conn, "POST", f"/v2/{repo}/blobs/uploads/?digest={mono}", blocks(2), GIB)
    assert r.status == 201, r.status

    for digest in (chunked, mono):
        conn.request("HEAD", f"/v2/{repo}/blobs/{digest}")
        r = conn.getresponse()
        r.read()
        assert r.status == 200 and int(r.headers["Content-Length"]) == GIB
        assert pull_digest(conn, f"/v2/{repo}/blobs/{digest}") == (digest, GIB)

    peak_mib = reg.peak_rss_kib() / 1024
    record_property("registry_peak_rss_mib", round(peak_mib, 1))
    print(f"\nregistry peak RSS: {idle_mib:.1f} MiB idle, {peak_mib:.1f} MiB after 2 GiB pushed and 2 GiB pulled")
    assert peak_mib < RSS_LIMIT_MIB, f"peak RSS {peak_mib:.0f} MiB"
    conn.close()
    # Leave tmp small for the rest of the session.
    reg.stop()
    for root, _, files in os.walk(reg.data_dir):
        for f in files:
            os.unlink(os.path.join(root, f))

"""Blob GETs spliced from S3's socket to the client's (registry/storage/s3_splice.py), through the
API on a real SeaweedFS: whole blobs and ranges, a client that stalls (the rest goes the buffered
way), a client that leaves mid-blob (nothing of its bytes reaches the next one), S3 faults."""
from __future__ import annotations

import asyncio
import os
import socket
import struct

import pytest
from aiohttp import web

from oci.digest import Digest
from registry import state
from registry.app import create_app
from registry.config import RegistryConfig
from registry.storage import s3_splice
from registry.storage.s3_splice import SpliceSender
from tests.registry.oci_client import push_blob
from tests.registry.storage.test_s3 import FlakyProxy

MiB = 1 << 20


@pytest.fixture
def spliced(monkeypatch):
    """Records what each spliced read returned: (bytes asked, bytes sent that way). A client
    can have every byte before the server's ``send`` returns (the kernel sent them), so tests
    ``await spliced.settled()`` before they look."""
    calls = _Calls()
    real = SpliceSender.send

    async def send(self, s3, request, resp, key, offset, length):
        calls.running += 1
        try:
            sent = await real(self, s3, request, resp, key, offset, length)
            calls.append((length, sent))
            return sent
        finally:
            calls.running -= 1

    monkeypatch.setattr(SpliceSender, "send", send)
    return calls


class _Calls(list):
    running = 0

    async def settled(self) -> "_Calls":
        for _ in range(200):
            if not self.running:
                return self
            await asyncio.sleep(0.01)
        raise AssertionError("a spliced send is still running")


async def _registry(aiohttp_client, tmp_path, settings):
    cfg = RegistryConfig(data_dir=str(tmp_path / "data"), storage=settings).finish()
    app = create_app(cfg)
    client = await aiohttp_client(app)
    return client, app


async def _raw_get(port: int, path: str, rcvbuf: int = 0) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    return sock


async def _read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    loop = asyncio.get_running_loop()
    data = bytearray()
    while b"\r\n\r\n" not in data:
        data += await loop.sock_recv(sock, 65536)
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    length = int([ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")][0].split(b":")[1])
    body = bytearray(body)
    while len(body) < length:
        chunk = await loop.sock_recv(sock, 1 << 20)
        assert chunk, f"connection closed after {len(body)} of {length} body bytes"
        body += chunk
    return head, bytes(body)


async def test_whole_blobs_and_ranges_are_spliced(s3_server, s3_prefix, no_aws, aiohttp_client, tmp_path, spliced):
    client, app = await _registry(aiohttp_client, tmp_path, s3_server.settings(prefix=s3_prefix))
    assert app[state.STORAGE].splicer is not None      # plain http endpoint, Linux
    data = os.urandom(5 * MiB + 123)
    digest = await push_blob(client, "splice/repo", data)
    url = f"/v2/splice/repo/blobs/{digest}"
    for _ in range(3):                                   # the same worker's connection and pipe, reused
        r = await client.get(url)
        assert r.status == 200 and r.headers["Content-Length"] == str(len(data))
        assert await r.read() == data
    r = await client.get(url, headers={"Range": f"bytes={MiB - 10}-{4 * MiB + 9}"})
    assert r.status == 206 and r.headers["Content-Range"] == f"bytes {MiB - 10}-{4 * MiB + 9}/{len(data)}"
    assert await r.read() == data[MiB - 10:4 * MiB + 10]
    r = await client.get(url, headers={"Range": "bytes=-5"})          # small: the buffered path
    assert r.status == 206 and await r.read() == data[-5:]
    r = await client.head(url)
    assert r.status == 200 and r.headers["Content-Length"] == str(len(data)) and await r.read() == b""
    assert await spliced.settled() == [(len(data), len(data))] * 3 + [(3 * MiB + 20, 3 * MiB + 20)]
    assert app[state.STORAGE].splicer.idle == s3_splice.THREADS


async def test_a_stalled_client_gets_the_rest_on_the_buffered_path(s3_server, s3_prefix, no_aws, aiohttp_client,
                                                                   tmp_path, spliced, monkeypatch):
    monkeypatch.setattr(s3_splice, "STALL", 0.1)
    client, app = await _registry(aiohttp_client, tmp_path, s3_server.settings(prefix=s3_prefix))
    data = os.urandom(12 * MiB)      # more than the kernel buffers between us and a client not reading
    digest = await push_blob(client, "splice/repo", data)
    sock = await _raw_get(client.port, f"/v2/splice/repo/blobs/{digest}", rcvbuf=4096)
    try:
        await asyncio.sleep(1.0)         # not reading: the worker gives the read back
        head, body = await _read_response(sock)
    finally:
        sock.close()
    assert head.startswith(b"HTTP/1.1 200") and body == data
    assert len(await spliced.settled()) == 1 and 0 < spliced[0][1] < len(data)
    assert app[state.STORAGE].splicer.idle == s3_splice.THREADS


async def test_a_client_that_leaves_mid_blob_leaves_nothing_for_the_next(s3_server, s3_prefix, no_aws,
                                                                         aiohttp_client, tmp_path, spliced):
    client, app = await _registry(aiohttp_client, tmp_path, s3_server.settings(prefix=s3_prefix))
    first, second = os.urandom(12 * MiB), os.urandom(3 * MiB)
    d1 = await push_blob(client, "splice/repo", first)
    d2 = await push_blob(client, "splice/repo", second)
    sock = await _raw_get(client.port, f"/v2/splice/repo/blobs/{d1}", rcvbuf=4096)
    await asyncio.sleep(0.3)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()                                         # a reset with bytes still in flight
    splicer = app[state.STORAGE].splicer
    deadline = asyncio.get_running_loop().time() + 10
    while splicer.idle != s3_splice.THREADS and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert splicer.idle == s3_splice.THREADS
    for _ in range(2):                                   # same worker thread: its pipe must be clean
        r = await client.get(f"/v2/splice/repo/blobs/{d2}")
        assert r.status == 200 and await r.read() == second
    assert (await spliced.settled())[-2:] == [(len(second), len(second))] * 2


class RangeFlaky(FlakyProxy):
    """Answers SlowDown to the next ``fail_ranges`` ranged GETs only (HEADs and PUTs go through)."""

    fail_ranges = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if "Range" in request.headers and self.fail_ranges > 0:
            self.fail_ranges -= 1
            return web.Response(status=503, content_type="application/xml",
                                text="<Error><Code>SlowDown</Code><Message>injected</Message></Error>")
        return await super().handle(request)


async def test_s3_faults_on_a_spliced_get_are_retried_then_end_the_connection(s3_server, s3_prefix, no_aws,
                                                                            aiohttp_client, aiohttp_server,
                                                                            tmp_path, spliced):
    import aiohttp

    proxy = RangeFlaky(s3_server.endpoint)
    papp = web.Application(client_max_size=1 << 30)
    papp.router.add_route("*", "/{tail:.*}", proxy.handle)
    pserver = await aiohttp_server(papp)
    settings = s3_server.settings(prefix=s3_prefix, endpoint=f"http://127.0.0.1:{pserver.port}", retries=2)
    client, _ = await _registry(aiohttp_client, tmp_path, settings)
    data = os.urandom(3 * MiB)
    digest = await push_blob(client, "flaky/repo", data)
    proxy.fail_ranges = 2                       # two SlowDowns, the third attempt goes through
    r = await client.get(f"/v2/flaky/repo/blobs/{digest}")
    assert r.status == 200 and await r.read() == data
    assert proxy.fail_ranges == 0 and await spliced.settled() == [(len(data), len(data))]
    proxy.fail_ranges = 3                       # every attempt: the 200 is out, so the body is cut
    r = await client.get(f"/v2/flaky/repo/blobs/{digest}")
    assert r.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await r.read()


async def test_a_local_clients_send_queue_is_sized_to_its_path(s3_server, s3_prefix, no_aws, aiohttp_client,
                                                                tmp_path, monkeypatch):
    """A loopback client's socket (RTT of microseconds) gets SEND_QUEUE_MIN, not the 4 MiB the
    kernel's autotuning grows it to during a pull (section 30: those bytes reached the client's
    copy cache-cold); bytes, ranges and the connection's next request are unchanged."""
    queues: list[int] = []
    real = SpliceSender.send

    async def send(self, s3, request, resp, key, offset, length):
        try:
            return await real(self, s3, request, resp, key, offset, length)
        finally:
            queues.append(request.transport.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))

    monkeypatch.setattr(SpliceSender, "send", send)
    client, _ = await _registry(aiohttp_client, tmp_path, s3_server.settings(prefix=s3_prefix))
    data = os.urandom(24 * MiB)
    digest = await push_blob(client, "splice/repo", data)
    url = f"/v2/splice/repo/blobs/{digest}"
    for _ in range(2):
        r = await client.get(url)
        assert r.status == 200 and await r.read() == data
    r = await client.get(url, headers={"Range": f"bytes={3 * MiB}-{20 * MiB - 1}"})
    assert r.status == 206 and await r.read() == data[3 * MiB:20 * MiB]
    for _ in range(200):          # the client can have every byte before the server's send returns
        if len(queues) == 3:
            break
        await asyncio.sleep(0.01)
    assert len(queues) == 3 and all(q <= 2 * s3_splice.SEND_QUEUE_MIN for q in queues), queues


class _FakeSock:
    def __init__(self, min_rtt_us: int, info_len: int = 232) -> None:
        info = bytearray(info_len)
        if info_len >= 152:
            struct.pack_into("I", info, 148, min_rtt_us)
        self.info, self.set = bytes(info), []

    def getsockopt(self, level, option, size=0):
        assert (level, option) == (socket.IPPROTO_TCP, socket.TCP_INFO)
        return self.info[:size]

    def setsockopt(self, level, option, value):
        self.set.append((level, option, value))


@pytest.mark.parametrize("min_rtt_us,expected", [
    (2, s3_splice.SEND_QUEUE_MIN),          # loopback: the floor
    (100, 400_000),                         # a LAN: one BDP at PATH_CEILING
    (20_000, 0),                            # a 20 ms path: its BDP is beyond autotuning's reach, left alone
    (0, 0),                                 # no RTT sample yet
])
def test_the_send_queue_is_one_bdp_at_the_path_ceiling(min_rtt_us, expected):
    sock = _FakeSock(min_rtt_us)
    assert s3_splice.fit_send_queue(sock) == expected
    assert sock.set == ([(socket.SOL_SOCKET, socket.SO_SNDBUF, expected)] if expected else [])
    old_kernel = _FakeSock(2, info_len=104)       # a tcp_info without tcpi_min_rtt: left alone
    assert s3_splice.fit_send_queue(old_kernel) == 0 and old_kernel.set == []

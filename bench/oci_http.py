"""A small OCI Distribution client for the benchmarks, the same for every registry measured.

Large transfers use http.client with zero-copy `socket.sendfile` for uploads and `readinto` a
reused 1 MiB buffer for downloads, so the client costs as little CPU as it can and the server
is what gets measured. Only loopback addresses are ever used.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
from pathlib import Path
from urllib.parse import urlsplit, urlencode

BUF = 1 << 20
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST_ACCEPT = ", ".join([
    OCI_MANIFEST, "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json"])


class RegistryError(Exception):
    pass


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(BUF):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class Client:
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        assert host.startswith("127."), "benchmarks only talk to loopback"
        self.host, self.port = host, port
        self.conn = http.client.HTTPConnection(host, port, timeout=600, blocksize=BUF)

    def close(self) -> None:
        self.conn.close()

    def _path(self, location: str) -> str:
        parts = urlsplit(location)
        return parts.path + ("?" + parts.query if parts.query else "")

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                expect: tuple[int, ...] = (200,)) -> http.client.HTTPResponse:
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            resp = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.conn.close()  # a server may close an idle keep-alive connection: one retry
            self.conn.request(method, path, body=body, headers=headers or {})
            resp = self.conn.getresponse()
        if resp.status not in expect:
            text = resp.read()[:300]
            raise RegistryError(f"{method} {path} -> {resp.status}: {text!r}")
        return resp

    def _send_file_range(self, method: str, path: str, f, offset: int, count: int,
                         headers: dict, expect: tuple[int, ...]) -> http.client.HTTPResponse:
        conn = self.conn
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in {**headers, "Content-Length": str(count), "Content-Type": "application/octet-stream"}.items():
            conn.putheader(k, v)
        conn.endheaders()
        sent = conn.sock.sendfile(f, offset, count)
        if sent != count:
            raise RegistryError(f"sent {sent} of {count} bytes")
        resp = conn.getresponse()
        if resp.status not in expect:
            raise RegistryError(f"{method} {path} -> {resp.status}: {resp.read()[:300]!r}")
        return resp

    def start_upload(self, name: str) -> str:
        resp = self.request("POST", f"/v2/{name}/blobs/uploads/", expect=(202,))
        resp.read()
        return self._path(resp.getheader("Location"))

    @staticmethod
    def _with_query(path: str, **params: str) -> str:
        return path + ("&" if "?" in path else "?") + urlencode(params)

    def push_file(self, name: str, path: Path, digest: str, chunk: int | None = None) -> None:
        """POST, then one PUT with the whole body, or PATCHes of `chunk` bytes and an empty PUT."""
        size = path.stat().st_size
        location = self.start_upload(name)
        with open(path, "rb") as f:
            if chunk is None:
                resp = self._send_file_range("PUT", self._with_query(location, digest=digest), f, 0, size,
                                             {}, (201,))
                resp.read()
                return
            offset = 0
            while offset < size:
                n = min(chunk, size - offset)
                resp = self._send_file_range("PATCH", location, f, offset, n,
                                             {"Content-Range": f"{offset}-{offset + n - 1}"}, (202,))
                resp.read()
                location = self._path(resp.getheader("Location"))
                offset += n
        resp = self.request("PUT", self._with_query(location, digest=digest), body=b"", expect=(201,))
        resp.read()

    def push_bytes(self, name: str, data: bytes) -> str:
        digest = sha256_digest(data)
        location = self.start_upload(name)
        resp = self.request("PUT", self._with_query(location, digest=digest), body=data,
                            headers={"Content-Type": "application/octet-stream"}, expect=(201,))
        resp.read()
        return digest

    def pull_blob(self, name: str, digest: str) -> int:
        """Download a blob into a reused buffer; returns the byte count (bytes are not kept)."""
        resp = self.request("GET", f"/v2/{name}/blobs/{digest}", expect=(200, 307))
        if resp.status == 307:
            raise RegistryError("redirected blob downloads are not measured")
        buf = memoryview(bytearray(BUF))
        total = 0
        while n := resp.readinto(buf):
            total += n
        return total

    def put_manifest(self, name: str, ref: str, manifest: bytes, media_type: str = OCI_MANIFEST) -> str:
        resp = self.request("PUT", f"/v2/{name}/manifests/{ref}", body=manifest,
                            headers={"Content-Type": media_type}, expect=(201,))
        resp.read()
        return resp.getheader("Docker-Content-Digest") or sha256_digest(manifest)

    def get_json_pages(self, path: str) -> list[dict]:
        """GET a listing and follow its `Link: <...>; rel="next"` pages."""
        pages = []
        while path:
            resp = self.request("GET", path)
            pages.append(json.loads(resp.read()))
            link = resp.getheader("Link") or ""
            path = self._path(link.split(";")[0].strip(" <>")) if 'rel="next"' in link else ""
        return pages


def tiny_image(client: Client, name: str, tag: str, salt: str = "") -> tuple[bytes, str]:
    """A valid single-layer OCI image with small blobs; returns (manifest bytes, digest)."""
    layer = b"layer" + salt.encode()
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers",
                         "diff_ids": [sha256_digest(layer)]}, "config": {}}).encode()
    layer_digest = client.push_bytes(name, layer)
    config_digest = client.push_bytes(name, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer_digest, "size": len(layer)}],
    }).encode()
    return manifest, client.put_manifest(name, tag, manifest)

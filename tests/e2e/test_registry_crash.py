"""kill -9 in the middle of concurrent pushes, then a restart on the same data dir and database.

Eight threads push random multi-MiB blobs in chunks (POST, PATCH..., PUT ?digest=) and now and
then a manifest over them, over plain HTTP, recording what the registry acknowledged. The
registry is SIGKILLed while they run, restarted, and then:

- no file in the blob tree is partial, and ``dockyard-registry fsck`` finds no dangling name;
- every blob and manifest whose PUT got its 201 is readable, byte for byte, with its digest;
- a blob that was never acknowledged is either absent (404) or complete and correct;
- every upload session whose POST was acknowledged still answers GET with a Range covering at
  least the acknowledged PATCHes, and can be resumed from there to a correct blob.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

import pytest

from tests.servers import REGISTRY_BIN

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(180)]

THREADS = 8
CHUNK = 256 * 1024
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class Upload:
    repo: str
    data: bytes
    digest: str
    location: str | None = None   # set once the POST was acknowledged
    acked_bytes: int = 0          # bytes of PATCHes acknowledged with 202
    done: bool = False            # the PUT got its 201


@dataclass
class Pushes:
    uploads: list[Upload] = field(default_factory=list)
    manifests: list[tuple[str, str, bytes]] = field(default_factory=list)  # repo, tag, bytes
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> tuple[int, int, int]:
        with self.lock:
            done = sum(u.done for u in self.uploads)
            open_ = sum(1 for u in self.uploads if u.location and not u.done and u.acked_bytes)
            return done, len(self.manifests), open_


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Client:
    def __init__(self, host: str) -> None:
        self.host = host
        self.conn = http.client.HTTPConnection(host, timeout=30)

    def request(self, method: str, url: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
        headers = dict(headers or {})
        if body is not None or method in ("PUT", "POST", "PATCH"):
            headers.setdefault("Content-Length", str(len(body or b"")))
        self.conn.request(method, url, body=body, headers=headers)
        r = self.conn.getresponse()
        return r.status, r.headers, r.read()

    def path(self, location: str) -> str:
        parts = urllib.parse.urlsplit(location)
        return parts.path + (f"?{parts.query}" if parts.query else "")


def with_query(location: str, **params: str) -> str:
    sep = "&" if "?" in location else "?"
    return location + sep + urllib.parse.urlencode(params)


def push_blob(client: Client, upload: Upload, pushes: Pushes) -> None:
    status, headers, body = client.request("POST", f"/v2/{upload.repo}/blobs/uploads/")
    assert status == 202, (status, body)
    with pushes.lock:
        upload.location = client.path(headers["Location"])
    offset = 0
    while offset < len(upload.data):
        chunk = upload.data[offset:offset + CHUNK]
        status, headers, body = client.request("PATCH", upload.location, chunk, {
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(chunk) - 1}"})
        assert status == 202, (status, body)
        offset += len(chunk)
        with pushes.lock:
            upload.location = client.path(headers["Location"])
            upload.acked_bytes = offset
    status, _, body = client.request("PUT", with_query(upload.location, digest=upload.digest))
    assert status == 201, (status, body)
    with pushes.lock:
        upload.done = True


def pusher(host: str, n: int, pushes: Pushes, stop: threading.Event) -> None:
    client = Client(host)
    repo = f"crash/t{n}"
    rng = random.Random(n)
    layers: list[Upload] = []
    try:
        while not stop.is_set():
            data = os.urandom(rng.randint(2, 6) * 1024 * 1024 + rng.randint(0, 1000))
            upload = Upload(repo, data, sha256(data))
            with pushes.lock:
                pushes.uploads.append(upload)
            push_blob(client, upload, pushes)
            layers.append(upload)
            if len(layers) == 2:
                config = json.dumps({"architecture": "amd64", "os": "linux", "n": n, "t": time.time()}).encode()
                cfg = Upload(repo, config, sha256(config))
                with pushes.lock:
                    pushes.uploads.append(cfg)
                push_blob(client, cfg, pushes)
                manifest = json.dumps({
                    "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": cfg.digest, "size": len(config)},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": u.digest,
                                "size": len(u.data)} for u in layers]}).encode()
                tag = f"m{len(pushes.manifests)}-{n}"
                status, _, body = client.request("PUT", f"/v2/{repo}/manifests/{tag}", manifest,
                                                 {"Content-Type": OCI_MANIFEST})
                assert status == 201, (status, body)
                with pushes.lock:
                    pushes.manifests.append((repo, tag, manifest))
                layers = []
    except (OSError, http.client.HTTPException):
        pass  # the registry was killed: expected
    except AssertionError as e:
        with pushes.lock:
            pushes.errors.append(f"thread {n}: {e}")


def restart_upload(client: Client, u: Upload) -> None:
    status, headers, body = client.request("POST", f"/v2/{u.repo}/blobs/uploads/")
    assert status == 202, (status, body)
    status, _, body = client.request("PUT", with_query(client.path(headers["Location"]), digest=u.digest), u.data,
                                     {"Content-Type": "application/octet-stream"})
    assert status == 201, (status, body)
    status, _, body = client.request("GET", f"/v2/{u.repo}/blobs/{u.digest}")
    assert status == 200 and body == u.data


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request) -> str | None:
    return request.getfixturevalue("postgres_url") if request.param == "postgres" else None


def test_kill_9_during_concurrent_pushes_then_restart(dockyard_registry, database_url):
    reg = dockyard_registry(database_url=database_url)
    pushes, stop = Pushes(), threading.Event()
    threads = [threading.Thread(target=pusher, args=(reg.host, n, pushes, stop), daemon=True)
               for n in range(THREADS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, manifests, open_ = pushes.count()
        if done >= 12 and manifests >= 3 and open_ >= 3:
            break
        assert not pushes.errors, pushes.errors
        time.sleep(0.02)
    else:
        pytest.fail(f"pushes too slow to reach the kill point: {pushes.count()}")
    reg.kill()
    stop.set()
    for t in threads:
        t.join(30)
    assert not pushes.errors, pushes.errors
    # On disk (registry/storage/layout.py): every file in the blob tree holds exactly the bytes
    # its name promises -- a blob appears only by rename after verification.
    for path in (reg.data_dir / "blobs" / "sha256").glob("*/*"):
        assert sha256(path.read_bytes()) == f"sha256:{path.name}", f"partial blob on disk: {path}"
    # The index names nothing whose bytes are missing (the registry's own read-only check).
    fsck = subprocess.run([str(REGISTRY_BIN), "fsck", "--data-dir", str(reg.data_dir),
                           *(["--database-url", reg.database_url] if reg.database_url else [])],
                          capture_output=True, text=True, timeout=120)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    reg.start()
    client = Client(reg.host)

    acked = [u for u in pushes.uploads if u.done]
    for u in acked:
        status, headers, body = client.request("GET", f"/v2/{u.repo}/blobs/{u.digest}")
        assert status == 200 and sha256(body) == u.digest, f"acknowledged blob {u.digest} lost ({status})"
        assert headers["Docker-Content-Digest"] == u.digest
    for repo, tag, manifest in pushes.manifests:
        status, headers, body = client.request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        assert status == 200 and body == manifest, f"acknowledged manifest {repo}:{tag} lost ({status})"
        assert headers["Docker-Content-Digest"] == sha256(manifest)

    unfinished = [u for u in pushes.uploads if not u.done]
    assert unfinished, "the kill came between pushes: nothing was in flight"
    resumed = restarted = 0
    for u in unfinished:
        status, _, body = client.request("GET", f"/v2/{u.repo}/blobs/{u.digest}")
        assert status == 404 or (status == 200 and body == u.data), \
            f"unacknowledged blob {u.digest} visible but wrong ({status}, {len(body)} bytes)"
        if u.location is None:
            continue  # the POST itself was never acknowledged
        status, headers, _ = client.request("GET", u.location)
        if status == 404 and u.acked_bytes == len(u.data):
            # The PUT was in flight: the bytes may have been committed without the 201 (or the
            # link) -- a client restarts such an upload, and that must work.
            restart_upload(client, u)
            restarted += 1
            continue
        assert status == 204, f"upload {u.location} lost after the restart ({status}, {u.acked_bytes} of {len(u.data)} bytes acknowledged)"
        end = int(headers["Range"].split("-")[1])
        offset = 0 if end == 0 and u.acked_bytes == 0 else end + 1
        assert u.acked_bytes <= offset <= len(u.data), (u.acked_bytes, headers["Range"], len(u.data))
        location = client.path(headers["Location"])
        if offset < len(u.data):
            status, headers, body = client.request("PATCH", location, u.data[offset:], {
                "Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{len(u.data) - 1}"})
            assert status == 202, (status, body)
            location = client.path(headers["Location"])
        status, _, body = client.request("PUT", with_query(location, digest=u.digest))
        assert status == 201, (status, body)
        status, _, body = client.request("GET", f"/v2/{u.repo}/blobs/{u.digest}")
        assert status == 200 and body == u.data
        resumed += 1
    assert resumed >= 1, "no upload session was in flight at the kill"
    print(f"\ncrash: {len(acked)} acknowledged blobs, {len(pushes.manifests)} manifests intact; "
          f"of {len(unfinished)} unfinished uploads {resumed} resumed, {restarted} restarted")

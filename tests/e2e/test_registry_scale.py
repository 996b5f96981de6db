"""Three replicas on one PostgreSQL and one bucket behind nginx round robin (tests/e2e/scale_support.py).

Real clients (docker, skopeo) push and pull through nginx; a chunked upload visits every
replica; a replica is killed with -9 while pushes run; nothing acknowledged is lost, every blob
is in the bucket once, and no replica keeps blob bytes on its local disk.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import uuid

import pytest

from tests import images
from tests.e2e.scale_support import Cluster, http, http_no_redirect, unique
from tests.helpers import need_tool
from tests.servers import REGISTRY_BIN

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(300)]
MiB = 1 << 20
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def cluster(postgres_server, s3_server):
    need_tool("nginx")
    name = "scale_" + uuid.uuid4().hex[:12]
    postgres_server.sql(f'CREATE DATABASE "{name}"')
    prefix = f"scale-{uuid.uuid4().hex[:8]}/"
    c = Cluster.start(postgres_server.url(name), s3_server.env(prefix))
    c.prefix = prefix
    try:
        yield c
    finally:
        c.stop()
        postgres_server.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(base: str, repo: str, data: bytes) -> str:
    """POST, one PATCH, PUT: docker's flow, each request wherever the load balancer sends it."""
    status, headers, body = http("POST", f"{base}/v2/{repo}/blobs/uploads/")
    assert status == 202, body
    status, headers, body = http("PATCH", base + headers["Location"], data,
                                 {"Content-Type": "application/octet-stream"})
    assert status == 202, body
    status, _, body = http("PUT", f"{base}{headers['Location']}?digest={sha(data)}")
    assert status == 201, body
    return sha(data)


def push_image(base: str, repo: str, tag: str, layers: list[bytes]) -> tuple[str, bytes]:
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers",
                         "diff_ids": [sha(layer) for layer in layers]}}).encode()
    for blob in (config, *layers):
        push_blob(base, repo, blob)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(b), "size": len(b)}
                   for b in layers]}).encode()
    status, headers, body = http("PUT", f"{base}/v2/{repo}/manifests/{tag}", manifest, {"Content-Type": OCI_MANIFEST})
    assert status == 201, body
    assert headers["Docker-Content-Digest"] == sha(manifest)
    return sha(manifest), manifest


def assert_readable(base: str, repo: str, tag: str, manifest: bytes) -> None:
    status, headers, body = http("GET", f"{base}/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
    assert status == 200 and body == manifest, (base, repo, status)
    doc = json.loads(manifest)
    for desc in [doc["config"], *doc["layers"]]:
        status, _, body = http("GET", f"{base}/v2/{repo}/blobs/{desc['digest']}")
        assert status == 200 and sha(body) == desc["digest"], (base, repo, desc["digest"], status)


def skopeo(*args: str) -> bytes:
    r = subprocess.run(["skopeo", *args], capture_output=True, timeout=300)
    assert r.returncode == 0, f"skopeo {' '.join(args)}:\n{r.stderr.decode(errors='replace')}"
    return r.stdout


def test_skopeo_and_docker_through_nginx_same_digests(cluster, busybox_image_dir, request):
    need_tool("skopeo")
    image = busybox_image_dir
    repo = f"{cluster.host}/{unique('sk')}/busybox"
    skopeo("copy", "-q", "--dest-tls-verify=false", image.ref, f"docker://{repo}:v1")
    for reg in cluster.replicas:   # the same bytes from every replica
        raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{repo.replace(cluster.host, reg.host)}:v1")
        assert raw == image.manifest.read()
    if os.geteuid() != 0 or not shutil.which("dockerd"):
        return   # docker's half needs root and the engine; skopeo's half ran above
    docker = request.getfixturevalue("dockerd")
    dest = f"{cluster.host}/{unique('dk')}/busybox:v1"
    archive = images.docker_archive(image, cluster.root / "img.tar", dest)
    docker.run("load", "-i", str(archive))
    out = docker.run("push", dest).stdout
    pushed = re.search(r"digest: (sha256:[0-9a-f]{64})", out).group(1)
    docker.run("rmi", dest)
    docker.run("pull", dest)
    repo_digests = docker.run("image", "inspect", "--format", "{{json .RepoDigests}}", dest).stdout
    assert pushed in repo_digests
    status, headers, _ = http("HEAD", f"{cluster.url}/v2/{dest.split('/', 1)[1].replace(':v1', '')}/manifests/v1",
                              headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert status == 200 and headers["Docker-Content-Digest"] == pushed
    docker.run("rmi", dest, check=False)


def test_chunked_upload_visits_every_replica(cluster):
    a, b, c = (r.url for r in cluster.replicas)
    repo = unique("chunk/")
    chunks = [os.urandom(n) for n in (300_000, 5 * MiB + 11, 2 * MiB, 64 * 1024, 7 * MiB)]
    data = b"".join(chunks)
    status, headers, _ = http("POST", f"{a}/v2/{repo}/blobs/uploads/")
    assert status == 202
    location, offset = headers["Location"], 0
    for i, chunk in enumerate(chunks):
        here = (b, c, a)[i % 3]
        status, headers, _ = http("GET", here + location)      # status on any replica
        assert status == 204 and headers["Range"] == f"0-{max(offset - 1, 0)}"
        status, headers, body = http("PATCH", (c, a, b)[i % 3] + location, chunk,
                                     {"Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                                      "Content-Type": "application/octet-stream"})
        assert status == 202, body
        offset += len(chunk)
        assert headers["Range"] == f"0-{offset - 1}"
    status, headers, body = http("PUT", f"{b}{location}?digest={sha(data)}")
    assert status == 201, body
    for base in (a, b, c):
        status, _, got = http("GET", f"{base}/v2/{repo}/blobs/{sha(data)}")
        assert status == 200 and got == data
        status, headers, got = http("GET", f"{base}/v2/{repo}/blobs/{sha(data)}", headers={"Range": "bytes=5-9"})
        assert status == 206 and got == data[5:10]


def test_tag_moved_on_one_replica_is_served_by_the_others_at_once(cluster):
    repo = unique("tags/")
    first, m1 = push_image(cluster.replicas[0].url, repo, "latest", [os.urandom(1000)])
    for reg in cluster.replicas:
        assert_readable(reg.url, repo, "latest", m1)
    second, m2 = push_image(cluster.replicas[1].url, repo, "latest", [os.urandom(1000)])
    for reg in cluster.replicas:
        status, headers, body = http("GET", f"{reg.url}/v2/{repo}/manifests/latest", headers={"Accept": OCI_MANIFEST})
        assert status == 200 and headers["Docker-Content-Digest"] == second and body == m2


def test_kill_9_during_concurrent_pushes_loses_nothing_acknowledged(cluster):
    victim = cluster.replicas[1]
    acknowledged: dict[str, bytes] = {}
    failures = []

    def one(i: int) -> None:
        repo = f"kill/{uuid.uuid4().hex[:8]}"
        layers = [os.urandom(200_000 + i), os.urandom(6 * MiB + i) if i % 4 == 0 else os.urandom(5000 + i)]
        try:
            _, manifest = push_image(cluster.url, repo, "v1", layers)
        except (AssertionError, OSError) as e:   # cut off by the kill: not acknowledged
            failures.append(repr(e)[:200])
            return
        acknowledged[repo] = manifest

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(one, i) for i in range(12)]
        deadline = time.monotonic() + 60
        while len(acknowledged) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        victim.kill()
        for f in futures:
            f.result()
    assert len(acknowledged) >= 6, failures   # at most the 4 pushes in flight at the kill fail
    for repo, manifest in acknowledged.items():
        for reg in (cluster.replicas[0], cluster.replicas[2]):
            assert_readable(reg.url, repo, "v1", manifest)
    victim.start()
    for repo, manifest in acknowledged.items():
        assert_readable(victim.url, repo, "v1", manifest)
    assert max(cluster.data_dir_bytes()) < MiB, cluster.data_dir_bytes()


def test_gc_on_one_replica_while_another_takes_pushes(cluster, s3_server):
    r0, r2 = cluster.replicas[0].url, cluster.replicas[2].url
    # Garbage older than the grace period: pushed, then unlinked.
    reused, dropped = os.urandom(50_000), os.urandom(40_000)
    repo_a = unique("gca/")
    for data in (reused, dropped):
        push_blob(r0, repo_a, data)
        assert http("DELETE", f"{r0}/v2/{repo_a}/blobs/{sha(data)}")[0] == 202
    time.sleep(2.2)   # S3's LastModified has one-second resolution
    gc = subprocess.Popen([str(REGISTRY_BIN), "gc", "--grace", "2s", "--data-dir", str(cluster.root / "gc"),
                           "--database-url", cluster.database_url], env=cluster.env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pushed = {}
    try:
        # Meanwhile replica 2 takes pushes, one of them re-uploading the blob that became garbage.
        repo_b = unique("gcb/")
        push_blob(r2, repo_b, reused)
        for i in range(3):
            repo = unique("gcc/")
            pushed[repo] = push_image(r2, repo, "v1", [os.urandom(3000 + i), reused])[1]
    finally:
        out, _ = gc.communicate(timeout=120)
    assert gc.returncode == 0, out
    status, _, body = http("GET", f"{r0}/v2/{repo_b}/blobs/{sha(reused)}")
    assert status == 200 and body == reused, out
    for repo, manifest in pushed.items():
        assert_readable(r0, repo, "v1", manifest)
    # What was garbage and stayed garbage is gone (this run or a later one).
    out = subprocess.run([str(REGISTRY_BIN), "gc", "--grace", "2s", "--data-dir", str(cluster.root / "gc"),
                          "--database-url", cluster.database_url], env=cluster.env, capture_output=True,
                         text=True, timeout=120).stdout
    assert http("GET", f"{r0}/v2/{repo_a}/blobs/{sha(dropped)}")[0] == 404
    keys = "".join(s3_server.objects(f"{cluster.prefix}blobs/"))
    assert hashlib.sha256(dropped).hexdigest() not in keys and hashlib.sha256(reused).hexdigest() in keys, out


def test_redirect_307_target_serves_the_bytes(cluster):
    redirecting = cluster.add_replica(DOCKYARD_REGISTRY_STORAGE__REDIRECT="true")
    try:
        repo = unique("redir/")
        data = os.urandom(300_000)
        digest = push_blob(cluster.url, repo, data)
        status, headers = http_no_redirect(f"{redirecting.url}/v2/{repo}/blobs/{digest}")
        assert status == 307 and headers["Docker-Content-Digest"] == digest
        status, _, body = http("GET", headers["Location"])
        assert status == 200 and body == data
        status, _ = http_no_redirect(f"{cluster.replicas[0].url}/v2/{repo}/blobs/{digest}")
        assert status == 200   # redirect is a per-replica setting; the others stream
    finally:
        redirecting.stop()
        cluster.replicas.remove(redirecting)


def test_bucket_holds_each_blob_once_and_replicas_no_bytes(cluster, s3_server):
    data = os.urandom(100_000)
    sessions = []
    for i, reg in enumerate(cluster.replicas):   # the same blob pushed to three repos, three replicas
        repo = unique(f"once{i}/")
        for big in (False, True):
            status, headers, _ = http("POST", f"{reg.url}/v2/{repo}/blobs/uploads/")
            blob = os.urandom(6 * MiB) if big else data
            http("PATCH", reg.url + headers["Location"], blob)
            status, _, _ = http("PUT", f"{reg.url}{headers['Location']}?digest={sha(blob)}")
            assert status == 201
            sessions.append(headers["Docker-Upload-UUID"])
    keys = s3_server.objects(cluster.prefix)
    blob_keys = [k for k in keys if k.startswith(f"{cluster.prefix}blobs/")]
    hexes = [k.rsplit("/", 1)[1] for k in blob_keys]
    assert len(hexes) == len(set(hexes))
    assert hexes.count(hashlib.sha256(data).hexdigest()) == 1
    # Nothing of a finished upload stays (sessions cut off by the kill -9 above wait for expiry).
    assert [k for k in keys if any(f"/uploads/{u}/" in k for u in sessions)] == []
    assert all(k.startswith(cluster.prefix) for k in keys)
    assert max(cluster.data_dir_bytes()) < MiB, cluster.data_dir_bytes()
    upstreams = {u for _, _, u in cluster.served_by()}
    assert len(upstreams) >= 3, upstreams   # nginx spread the requests over the replicas

"""The pull-through cache with real clients and two real upstreams started here:

- ``dist``: CNCF distribution 2.8.2 (anonymous), behind a small faulty proxy (aiohttp, in a
  thread) that counts requests and answers 429 / 503 / stalls on demand; also the ``mirror``;
- ``auth``: a second dockyard-registry in token mode whose repositories only user ``puller`` may
  pull (the cache signs in with the Bearer token flow).

Clients: skopeo and ``dockyard pull`` through the prefixes, and ``docker pull`` through a dockerd
whose ``registry-mirrors`` names the cache. Digests are compared with the upstream's.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests import images
from tests.e2e.node_images_support import PASSWORD, USER, basic_registry, dockyard  # noqa: F401 (fixture)
from tests.helpers import free_port, need, need_root, need_tool
from tests.registry.proxy.faulty import FaultyProxy
from tests.servers import REGISTRY_BIN, DockyardRegistry

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

AUTH_UPSTREAM = """
auth:
  mode: token
  admins: [root]
  rules:
    - {pattern: "private/*", users: [puller], actions: [pull]}
"""


def _cli(data: Path, config: Path, *args: str, input: str | None = None) -> None:
    r = subprocess.run([str(REGISTRY_BIN), *args, "--config", str(config), "--data-dir", str(data)], input=input,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def skopeo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["skopeo", "--command-timeout", "90s", *args], capture_output=True, text=True, timeout=timeout)


def inspect_digest(ref: str, *extra: str) -> str:
    r = skopeo("inspect", "--tls-verify=false", "--raw", *extra, f"docker://{ref}")
    assert r.returncode == 0, r.stderr
    r2 = skopeo("inspect", "--tls-verify=false", *extra, f"docker://{ref}")
    assert r2.returncode == 0, r2.stderr
    return json.loads(r2.stdout)["Digest"]


def fetch(url: str, accept: str = images.OCI_MANIFEST) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def envelope_message(body: bytes) -> str:
    return json.loads(body)["errors"][0]["code"] + ": " + json.loads(body)["errors"][0]["message"]


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


class Env:
    def __init__(self, dist: str, faulty: FaultyProxy, auth: DockyardRegistry, cache: DockyardRegistry) -> None:
        self.dist, self.faulty, self.auth, self.cache = dist, faulty, auth, cache


@pytest.fixture(scope="module")
def env(reference_registry, tmp_path_factory):
    need(REGISTRY_BIN.exists(), f"needs {REGISTRY_BIN} (make venv)")
    need_tool("skopeo")
    base = tmp_path_factory.mktemp("proxy")
    faulty = FaultyProxy(f"http://{reference_registry}").start_in_thread(free_port())
    auth_cfg = base / "auth.yml"
    auth_cfg.write_text(AUTH_UPSTREAM)
    auth_data = base / "auth-data"
    _cli(auth_data, auth_cfg, "user", "add", "root", "--password-stdin", "--admin", input="rootpw-1\n")
    _cli(auth_data, auth_cfg, "user", "add", "puller", "--password-stdin", input="pullerpw-1\n")
    auth = DockyardRegistry(auth_data, None, ("--config", str(auth_cfg))).start()
    cache_cfg = base / "cache.yml"
    cache_cfg.write_text(json.dumps({"proxy": {"mirror": "dist", "upstreams": [
        # generous timeouts where nothing stalls on purpose (a loaded CI machine is slow);
        # "flaky" is the same faulty proxy, for the stall test, with a short one
        {"name": "dist", "url": faulty.url, "tag_ttl": "0s", "timeout": "20s"},
        {"name": "flaky", "url": faulty.url, "tag_ttl": "0s", "timeout": "2s"},
        {"name": "auth", "url": auth.url, "username": "puller", "password": "pullerpw-1", "tag_ttl": "0s",
         "timeout": "20s"},
    ]}}))
    cache = DockyardRegistry(base / "cache-data", None, ("--config", str(cache_cfg))).start()
    try:
        yield Env(reference_registry, faulty, auth, cache)
    finally:
        cache.stop()
        auth.stop()
        faulty.stop()
    # the upstream's password never reaches the log
    assert "pullerpw-1" not in cache.log.read_text()


@pytest.fixture(scope="module")
def busybox(tmp_path_factory):
    need(images.BUSYBOX.exists(), "needs /bin/busybox (apt-get install busybox-static)")
    return images.build_busybox_image(tmp_path_factory.mktemp("pxy-img") / "layout", "1")


def test_skopeo_through_both_prefixes_keeps_digests(env, busybox, tmp_path):
    repo = unique("lib/sk")
    digest = images.push_image(busybox, f"{env.dist}/{repo}:1")
    # anonymous distribution upstream
    out = tmp_path / "out"
    r = skopeo("copy", "-q", "--src-tls-verify=false", f"docker://{env.cache.host}/dist/{repo}:1", f"oci:{out}:1")
    assert r.returncode == 0, r.stderr
    assert images.read_layout_manifest(out, "1")[0] == digest
    assert inspect_digest(f"{env.cache.host}/dist/{repo}@{digest}") == digest
    # token-auth dockyard upstream: anonymous pulls there are refused, the cache signs in
    private = unique("private/sk")
    r = skopeo("copy", "-q", "--dest-tls-verify=false", "--dest-creds", "root:rootpw-1", busybox.ref,
               f"docker://{env.auth.host}/{private}:1")
    assert r.returncode == 0, r.stderr
    assert skopeo("inspect", "--tls-verify=false", f"docker://{env.auth.host}/{private}:1").returncode != 0
    assert inspect_digest(f"{env.cache.host}/auth/{private}:1") == digest
    r = skopeo("copy", "-q", "--src-tls-verify=false", f"docker://{env.cache.host}/auth/{private}:1", f"oci:{out}:2")
    assert r.returncode == 0, r.stderr
    # the catalog lists the cached repositories like any other
    r = subprocess.run(["curl", "-sf", f"{env.cache.url}/v2/_catalog"], capture_output=True, text=True, timeout=30)
    names = json.loads(r.stdout)["repositories"]
    assert f"dist/{repo}" in names and f"auth/{private}" in names
    # pushes to a prefix are refused, clearly
    r = skopeo("copy", "-q", "--dest-tls-verify=false", busybox.ref, f"docker://{env.cache.host}/dist/{repo}:2")
    assert r.returncode != 0 and "read-only cache of upstream dist" in r.stderr, r.stderr


def test_dockyard_pull_through_the_prefix(env, busybox, tmp_path):
    need_root()
    repo = unique("lib/dy")
    digest = images.push_image(busybox, f"{env.dist}/{repo}:1")
    ref = f"{env.cache.host}/dist/{repo}:1"
    r = dockyard(tmp_path / "root", "pull", ref)
    assert r.returncode == 0, r.stderr
    assert f"Digest: {digest}" in r.stdout, r.stdout


def _set_mirror(docker, mirror: str | None) -> None:
    """Point the session's dockerd at a registry mirror (reloaded on SIGHUP), or at none."""
    (docker.root / "daemon.json").write_text(json.dumps({"registry-mirrors": [mirror] if mirror else []}))
    os.kill(int((docker.root / "dockerd.pid").read_text()), signal.SIGHUP)
    want = mirror.rstrip("/") + "/" if mirror else None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        mirrors = json.loads(docker.run("info", "--format", "{{json .RegistryConfig.Mirrors}}").stdout or "null") or []
        if (want in mirrors) if want else not mirrors:
            return
        time.sleep(0.2)
    raise AssertionError(f"dockerd did not pick up registry-mirrors={mirror}")


@pytest.mark.docker
def test_docker_pull_through_the_mirror(env, busybox, dockerd):
    name = unique("pxy")
    digest = images.push_image(busybox, f"{env.dist}/library/{name}:1")
    _set_mirror(dockerd, env.cache.url)
    try:
        env.faulty.reset_counts()
        out = dockerd.run("pull", f"{name}:1").stdout
        assert f"Digest: {digest}" in out, out
        assert env.faulty.gets(f"/v2/library/{name}/manifests/") >= 1  # it came through the cache
        assert dockerd.run("image", "inspect", "--format", "{{.Id}}", f"{name}:1").stdout.strip() == busybox.config.digest
    finally:
        dockerd.run("rmi", "-f", f"{name}:1", check=False)
        _set_mirror(dockerd, None)


def test_faulty_upstream_serves_cached_tags(env, busybox):
    repo = unique("lib/flt")
    digest = images.push_image(busybox, f"{env.dist}/{repo}:cached")
    images.push_image(busybox, f"{env.dist}/{repo}:never")
    assert inspect_digest(f"{env.cache.host}/flaky/{repo}:cached") == digest
    try:
        for mode in ("429", "503", "stall"):
            env.faulty.mode = mode
            assert inspect_digest(f"{env.cache.host}/flaky/{repo}:cached") == digest, mode
            status, headers, _ = fetch(f"{env.cache.url}/v2/flaky/{repo}/manifests/cached")
            assert status == 200 and headers["Warning"].startswith("110 ") and "may be stale" in headers["Warning"]
            r = skopeo("inspect", "--tls-verify=false", "--retry-times", "0", f"docker://{env.cache.host}/flaky/{repo}:never")
            assert r.returncode != 0 and "503 Service Unavailable" in r.stderr, r.stderr
            status, headers, body = fetch(f"{env.cache.url}/v2/flaky/{repo}/manifests/never")
            assert status == 503 and "Retry-After" in headers
            expected = {"429": "upstream flaky answered 429", "503": "upstream flaky answered 503",
                        "stall": "upstream flaky did not answer within 2s"}[mode]
            assert envelope_message(body) == f"UNAVAILABLE: {expected}"
    finally:
        env.faulty.mode = "pass"


def test_stopped_upstream_serves_cached_tags_and_fails_uncached_clearly(env, busybox):
    cached, uncached = unique("private/stop"), unique("private/stop")
    for repo in (cached, uncached):
        r = skopeo("copy", "-q", "--dest-tls-verify=false", "--dest-creds", "root:rootpw-1", busybox.ref,
                   f"docker://{env.auth.host}/{repo}:1")
        assert r.returncode == 0, r.stderr
    assert inspect_digest(f"{env.cache.host}/auth/{cached}:1") == busybox.manifest.digest
    env.auth.stop()
    try:
        assert inspect_digest(f"{env.cache.host}/auth/{cached}:1") == busybox.manifest.digest
        r = skopeo("inspect", "--tls-verify=false", "--retry-times", "0", f"docker://{env.cache.host}/auth/{uncached}:1")
        assert r.returncode != 0 and "503 Service Unavailable" in r.stderr, r.stderr
        status, _, body = fetch(f"{env.cache.url}/v2/auth/{uncached}/manifests/1")
        assert status == 503
        assert envelope_message(body) == "UNAVAILABLE: upstream auth is unreachable (ClientConnectorError)"
    finally:
        env.auth.start()


def cold_image(dest: Path) -> images.OciImage:
    """An image no other test shares a blob with: a 3 MiB random layer and a small one."""
    dest.mkdir(parents=True)
    layers = [images.add_layer(dest, entries=[images.File("big.bin", os.urandom(3 << 20))]),
              images.add_layer(dest, entries=[images.File("id", uuid.uuid4().bytes)])]
    return images.make_image(dest, layers, "1")


def test_ten_concurrent_cold_pulls_one_get_per_blob(env, tmp_path):
    image = cold_image(tmp_path / "cold")
    repo = unique("lib/conc")
    images.push_image(image, f"{env.dist}/{repo}:1")
    env.faulty.reset_counts()

    def pull(i: int) -> subprocess.CompletedProcess:
        return skopeo("copy", "-q", "--src-tls-verify=false", f"docker://{env.cache.host}/dist/{repo}:1",
                      f"oci:{tmp_path / f'out{i}'}:1")

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(pull, range(10)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results if r.returncode]
    for blob in [image.config, *image.layers]:
        assert env.faulty.gets(blob.digest) == 1, (blob.digest, env.faulty.counts)


def test_one_platform_of_an_index_fetches_none_of_the_other(env, tmp_path):
    need(images.BUSYBOX.exists(), "needs /bin/busybox")
    multi = images.build_multiplatform_image(tmp_path / "multi", "latest")
    repo = unique("lib/multi")
    images.push_image(multi, f"{env.dist}/{repo}:latest")
    env.faulty.reset_counts()
    r = skopeo("copy", "-q", "--src-tls-verify=false", "--override-arch", "amd64", "--override-os", "linux",
               f"docker://{env.cache.host}/dist/{repo}:latest", f"oci:{tmp_path / 'out'}:1")
    assert r.returncode == 0, r.stderr
    amd64, arm64 = multi.children
    assert env.faulty.gets(amd64.manifest.digest) == 1
    assert env.faulty.gets(arm64.manifest.digest) == 0
    assert env.faulty.gets(arm64.config.digest) == 0
    for blob in amd64.layers:  # (some may be cached already from another test's image: 0)
        assert env.faulty.gets(blob.digest) <= 1


def test_basic_auth_upstream_and_refused_credentials(basic_registry, busybox, dockyard_registry, tmp_path):
    host = basic_registry.host
    r = skopeo("copy", "-q", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{PASSWORD}", busybox.ref,
               f"docker://{host}/lib/basic:1")
    assert r.returncode == 0, r.stderr
    config = tmp_path / "cache.yml"
    config.write_text(json.dumps({"proxy": {"upstreams": [
        {"name": "good", "url": f"http://{host}", "username": USER, "password": PASSWORD},
        {"name": "bad", "url": f"http://{host}", "username": USER, "password": "wrong"},
    ]}}))
    cache = dockyard_registry(args=("--config", str(config)))
    assert inspect_digest(f"{cache.host}/good/lib/basic:1") == busybox.manifest.digest
    status, _, body = fetch(f"{cache.url}/v2/bad/lib/basic/manifests/1")
    assert status == 502, body
    assert envelope_message(body).startswith("UNAVAILABLE: upstream bad refused access (401)")

"""The server fixtures themselves: each starts, answers, and is reachable the way tests use it."""
from __future__ import annotations

import json
import urllib.request

import pytest

pytestmark = pytest.mark.e2e


@pytest.mark.postgres
def test_postgres_url_is_a_fresh_database(postgres_server, postgres_url):
    name = postgres_url.rsplit("/", 1)[1]
    assert postgres_server.sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", name).strip() == "0"


def test_reference_registry_answers(reference_registry):
    with urllib.request.urlopen(f"http://{reference_registry}/v2/") as r:
        assert r.headers["Docker-Distribution-Api-Version"] == "registry/2.0"


@pytest.mark.docker
def test_dockerd_is_private(dockerd):
    info = json.loads(dockerd.run("info", "--format", "{{json .}}").stdout)
    assert info["DockerRootDir"].startswith(str(dockerd.root))


def test_dockyard_registry_restart_keeps_port(dockyard_registry):
    reg = dockyard_registry()
    first = reg.pid
    reg.restart()
    assert reg.pid != first
    with urllib.request.urlopen(f"{reg.url}/v2/") as r:
        assert r.status == 200


def test_push_image_to_the_shared_registry(shared_dockyard_registry, busybox_image_dir):
    from tests import images

    digest = images.push_image(busybox_image_dir, f"{shared_dockyard_registry.host}/servers/busybox:1")
    req = urllib.request.Request(f"{shared_dockyard_registry.url}/v2/servers/busybox/manifests/1",
                                 headers={"Accept": images.OCI_MANIFEST})
    with urllib.request.urlopen(req) as r:
        assert r.read() == busybox_image_dir.manifest.read()
        assert r.headers["Docker-Content-Digest"] == digest

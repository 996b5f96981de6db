"""Networking through the engine: real containers (builtin runtime) from a busybox-static rootfs
used directly as the image's only layer, so these tests need no registry and no image store."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from node.network import api, firewall, links, networks
from node.network.state import Store
from tests.helpers import free_port, need, need_root, need_tool, wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]

APPLETS = ("sh", "httpd", "wget", "cat", "echo", "sleep", "ip")


class _Config:
    config = {"Cmd": ["httpd", "-f", "-p", "80", "-h", "/www"], "ExposedPorts": {"80/tcp": {}}}


class BusyboxImage:
    id = "sha256:" + "0" * 64
    config = _Config()

    def __init__(self, layer: Path) -> None:
        self.layer = layer

    def layer_dirs(self) -> list[Path]:
        return [self.layer]


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    layer = tmp_path_factory.mktemp("busybox-layer")
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "www"):
        (layer / d).mkdir()
    shutil.copy("/bin/busybox", layer / "bin" / "busybox")
    for applet in APPLETS:
        os.symlink("busybox", layer / "bin" / applet)
    (layer / "www" / "index.html").write_text("served from a container\n")
    return BusyboxImage(layer)


@pytest.fixture
def root(tmp_path):
    need_root()
    need_tool("nft", "nsenter")
    need(os.path.exists("/bin/busybox"), "needs busybox-static at /bin/busybox")
    root = tmp_path / "root"
    yield root
    from node.engine.records import Container
    from node.engine.remove import remove_container
    containers = root / "containers"
    for d in (containers.iterdir() if containers.exists() else []):
        try:
            remove_container(root, Container(root, d.name), force=True, volumes=True)
        except Exception:  # noqa: BLE001 - teardown keeps going
            pass
    api.purge(root)


def run(root, image, *, name, command=(), detach=True, **kw):
    from node.engine.create import create_container
    from node.engine.options import RunOptions
    from node.engine.start import run_attached, start_container
    c = create_container(root, RunOptions(image="busybox-web", name=name, detach=detach,
                                          command=list(command), **kw), image)
    if detach:
        start_container(root, c)
        return c
    return c, run_attached(root, c)


def fetch(url: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def dockyard(root, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "node", "--root", str(root), *args],
                          capture_output=True, text=True, timeout=60)


def test_published_port_lives_and_dies_with_the_container(root, image):
    from node.engine.records import Container
    from node.engine.remove import remove_container
    from node.engine.start import start_container
    from node.engine.stop import stop_container
    port = free_port()
    web = run(root, image, name="web", network="bridge", publish=[f"{port}:80", "80"])
    assert fetch(f"http://127.0.0.1:{port}/") == "served from a container\n"
    settings = web.state()["Network"]
    assert settings["Ports"]["80/tcp"][0] == {"HostIp": "0.0.0.0", "HostPort": str(port)}
    netns_path, ip = settings["SandboxKey"], settings["IPAddress"]
    assert fetch(f"http://{ip}/") == "served from a container\n"
    out = dockyard(root, "port", "web")
    assert f"80/tcp -> 0.0.0.0:{port}" in out.stdout, out.stderr

    stop_container(Container(root, web.id), 5)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
    assert not os.path.exists(netns_path)
    start_container(root, Container(root, web.id))  # a restart gets a network again
    assert fetch(f"http://127.0.0.1:{port}/") == "served from a container\n"

    bridge = Store(root).network("bridge").bridge
    veth = Store(root).container(web.id).endpoints[0].host_veth
    remove_container(root, Container(root, web.id), force=True)
    assert not os.path.exists(api.netns_path_for(root, web.id))
    # no explicit delete: the kernel removes the veth pair with the namespace, in its own time
    wait_until(lambda: not links.link_exists(veth), what=f"{veth} gone with the namespace")
    assert web.id not in firewall.ruleset(Store(root))
    # the idle default bridge stays, like docker0, with its masquerade rule
    assert Store(root).network("bridge").allocations == {}
    assert links.link_exists(bridge)
    assert f'oifname != "{bridge}" masquerade' in firewall.ruleset(Store(root))
    api.purge(root)  # the one way to remove it: bridge, record and table
    assert Store(root).network("bridge") is None
    assert not links.link_exists(bridge)
    assert firewall.ruleset(Store(root)) == ""


def test_containers_find_each_other_by_name_and_networks_are_isolated(root, image):
    store = Store(root)
    networks.create(store, "app")
    networks.create(store, "other")
    web = run(root, image, name="web", network="app", network_aliases=["www"])
    ip = web.state()["Network"]["IPAddress"]
    fetch(f"http://{ip}/")
    _, code = run(root, image, name="client", network="app", detach=False, command=[
        "sh", "-c", "wget -qO- http://web/ && wget -qO- http://www/ && grep -w web /etc/hosts"])
    assert code == 0
    _, code = run(root, image, name="stranger", network="other", detach=False, command=[
        "sh", "-c", f"wget -T 2 -qO- http://{ip}/"])
    assert code != 0  # no path from one user network to another


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_other_runtimes_join_the_attached_namespace(root, image, runtime):
    need_tool(runtime)
    port = free_port()
    web = run(root, image, name=f"web-{runtime}", network="bridge", publish=[f"{port}:80"],
              runtime=runtime)
    assert fetch(f"http://127.0.0.1:{port}/") == "served from a container\n"
    from node.engine.records import Container
    from node.engine.remove import remove_container
    remove_container(root, Container(root, web.id), force=True)
    assert not os.path.exists(api.netns_path_for(root, web.id))

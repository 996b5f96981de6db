"""The seed scenario of the networking issue, end to end with real clients and servers:

a web-server image built from busybox-static by the Docker engine, pushed with `docker push` to a
dockyard-registry, pulled and run by `dockyard run -d --name web -p HOSTPORT:80`, fetched from the
host at 127.0.0.1 and from a second "host" (a network namespace joined by a veth pair); `stop`
closes the port, `rm` leaves no veth, no rule and no namespace file behind.
"""
from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import free_port, need, need_root, need_tool

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.docker, pytest.mark.slow]

PAGE = "hello from the dockyard seed scenario\n"
REMOTE_NETNS_NAME = f"test-seed-remote-{os.getpid()}"
HOST_LINK, REMOTE_LINK = f"dys{os.getpid() % 100000}h", f"dys{os.getpid() % 100000}r"


@pytest.fixture(scope="module")
def web_image(dockerd, tmp_path_factory):
    """127.0.0.1:PORT/web:latest in a dockyard-registry, pushed by docker."""
    from tests import images
    from tests.servers import DockyardRegistry

    need(images.BUSYBOX.exists(), "needs /bin/busybox (busybox-static)")
    ctx = tmp_path_factory.mktemp("web-image")
    rootfs = images.busybox_rootfs(ctx / "rootfs")
    images.tar_layer(ctx / "rootfs.tar", root=rootfs, compress=False)
    (ctx / "www").mkdir()
    (ctx / "www" / "index.html").write_text(PAGE)
    registry = DockyardRegistry(tmp_path_factory.mktemp("web-registry") / "data", None).start()
    try:
        ref = f"{registry.host}/web:latest"
        images.docker_build(dockerd, ctx, ref, "FROM scratch\nADD rootfs.tar /\nCOPY www /www\n"
                            'EXPOSE 80\nCMD ["httpd", "-f", "-p", "80", "-h", "/www"]\n')
        dockerd.run("push", ref)
        yield ref
    finally:
        registry.stop()


@pytest.fixture
def dockyard(tmp_path):
    need_root()
    need_tool("nft", "nsenter")
    need(importlib.util.find_spec("node.images.pull") is not None, "needs node.images.pull")
    root = tmp_path / "root"

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "node", "--root", str(root), *args],
                              capture_output=True, text=True, timeout=120)
        if check:
            assert proc.returncode == 0, f"dockyard {' '.join(args)}: {proc.stderr}"
        return proc

    run.root = root
    yield run
    ids = run("ps", "-aq", check=False).stdout.split()
    if ids:
        run("rm", "-f", *ids, check=False)
    from node.network import api
    api.purge(root)


@pytest.fixture
def remote_host():
    """Another machine: a netns on 10.251.1.0/30 reaching this host at 10.251.1.1 via veth."""
    from node.network import links
    path = str(links.NETNS_DIR / REMOTE_NETNS_NAME)
    links.create_netns(path)
    links.delete_link(HOST_LINK)
    subprocess.run(["ip", "link", "add", HOST_LINK, "type", "veth", "peer", "name", REMOTE_LINK], check=True)
    subprocess.run(["ip", "link", "set", REMOTE_LINK, "netns", path], check=True)
    subprocess.run(["ip", "addr", "add", "10.251.1.1/30", "dev", HOST_LINK], check=True)
    subprocess.run(["ip", "link", "set", HOST_LINK, "up"], check=True)
    inside = ["nsenter", f"--net={path}", "ip"]
    subprocess.run([*inside, "addr", "add", "10.251.1.2/30", "dev", REMOTE_LINK], check=True)
    subprocess.run([*inside, "link", "set", REMOTE_LINK, "up"], check=True)
    try:
        yield path
    finally:
        links.delete_link(HOST_LINK)
        links.remove_netns(path)


def fetch(url: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def fetch_from(netns_path: str, url: str) -> str:
    code = "import sys,urllib.request;print(urllib.request.urlopen(sys.argv[1],timeout=5).read().decode(),end='')"
    proc = subprocess.run(["nsenter", f"--net={netns_path}", sys.executable, "-c", code, url],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def host_veths() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()
            if line.split(":")[1].strip().startswith("dyv")}


def test_seed_scenario_publish_fetch_stop_rm(dockyard, web_image, remote_host):
    port = 8080 if port_is_free(8080) else free_port()  # the port, unless taken here
    out = dockyard("run", "-d", "--name", "web", "-p", f"{port}:80", web_image)  # default: bridge
    cid = out.stdout.strip().splitlines()[-1]
    assert fetch(f"http://127.0.0.1:{port}/") == PAGE
    assert fetch_from(remote_host, f"http://10.251.1.1:{port}/") == PAGE  # not only loopback
    assert f"0.0.0.0:{port}->80/tcp" in dockyard("ps").stdout
    # IPv4 first; where the host has IPv6, the userland proxy's [::] line too (as docker's)
    assert dockyard("port", "web").stdout.splitlines()[0] == f"80/tcp -> 0.0.0.0:{port}"
    settings = json.loads(dockyard("inspect", "web").stdout)[0]["NetworkSettings"]
    netns_path = settings["SandboxKey"]
    from node.network.state import Store
    veth = Store(dockyard.root).container(cid).endpoints[0].host_veth
    assert os.path.exists(netns_path) and veth in host_veths()

    dockyard("stop", "-t", "2", "web")  # httpd as PID 1 ignores SIGTERM: docker would wait 10 s
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)

    dockyard("rm", "web")
    assert not os.path.exists(netns_path)
    assert veth not in host_veths()  # (other veths may come and go: tests run concurrently)
    rules = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    assert cid not in rules and f"dport {port}" not in rules
    assert all(not n.allocations for n in Store(dockyard.root).networks())


def test_published_all_exposed_ports(dockyard, web_image):
    dockyard("run", "-d", "--name", "webp", "-P", web_image)
    line = dockyard("port", "webp", "80").stdout.strip()
    host_port = int(line.rsplit(":", 1)[1])
    assert fetch(f"http://127.0.0.1:{host_port}/") == PAGE
    dockyard("rm", "-f", "webp")

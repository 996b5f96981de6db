"""`dockyard network ...`, `--network/--network-alias/--ip` and `port` through the real command
line. The image lookup is answered with a busybox-static rootfs directory (no registry needed):
the CLI runs from a two-line launcher that swaps node.cli.containers._image before main()."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import need, need_root, need_tool

pytestmark = [pytest.mark.root, pytest.mark.slow]

LAUNCHER = """
import json, sys
from pathlib import Path
from types import SimpleNamespace
import node.cli.containers as containers
layer = Path(sys.argv[1])
image = SimpleNamespace(id="sha256:" + "c" * 64, config=SimpleNamespace(config={"Cmd": ["sh"]}),
                        layer_dirs=lambda: [layer], repo_tags=["busybox:latest"])
containers._image = lambda args: image
from node.__main__ import main
sys.exit(main(sys.argv[2:]))
"""
PAGE = "page from web\n"
# Per-process subnet: two test runs on one machine (helpers, CI retries) must not collide.
NET = f"10.252.{10 + os.getpid() % 240}"


@pytest.fixture(scope="module")
def layer(tmp_path_factory):
    need(os.path.exists("/bin/busybox"), "needs busybox-static at /bin/busybox")
    layer = tmp_path_factory.mktemp("bb") / "layer"
    (layer / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", layer / "bin" / "busybox")
    for applet in ("sh", "httpd", "wget", "sleep", "cat", "ip"):
        os.symlink("busybox", layer / "bin" / applet)
    for d in ("etc", "tmp", "proc", "sys", "dev", "www"):
        (layer / d).mkdir()
    (layer / "www" / "index.html").write_text(PAGE)
    return layer


@pytest.fixture
def dy(layer, tmp_path):
    need_root()
    need_tool("nft")
    root = tmp_path / "root"

    def run(*args: str, ok: bool | None = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-c", LAUNCHER, str(layer), "--root", str(root), *args],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        if ok is True:
            assert proc.returncode == 0, f"dockyard {' '.join(args)}: {proc.stdout}{proc.stderr}"
        elif ok is False:
            assert proc.returncode != 0, f"dockyard {' '.join(args)} should fail: {proc.stdout}"
        return proc

    yield run
    ids = run("ps", "-aq", ok=None).stdout.split()
    if ids:
        run("rm", "-f", *ids, ok=None)
    from node.network import api
    api.purge(root)


def test_user_network_from_the_command_line(dy):
    net_id = dy("network", "create", "--subnet", f"{NET}.0/24", "--gateway", f"{NET}.254",
                "app").stdout.strip()
    assert len(net_id) == 64
    clash = dy("network", "create", "--subnet", f"{NET}.128/25", "app2", ok=False)
    assert "overlaps network app" in clash.stderr
    assert "app" in dy("network", "ls", "-q").stdout.split()

    dy("run", "-d", "--name", "web", "--network", "app", "--network-alias", "www",
       "--ip", f"{NET}.50", "busybox", "httpd", "-f", "-p", "80", "-h", "/www")
    got = dy("run", "--rm", "--network", "app", "busybox", "sh", "-c",
             "wget -qO- http://www/ && ip route && cat /etc/hosts").stdout
    assert got.startswith(PAGE)
    assert f"default via {NET}.254" in got and f"{NET}.50\tweb www" in got
    info = json.loads(dy("network", "inspect", "app").stdout)[0]
    assert [c["IPv4Address"] for c in info["Containers"].values()] == [f"{NET}.50/24"]
    assert info["IPAM"]["Config"] == [{"Subnet": f"{NET}.0/24", "Gateway": f"{NET}.254"}]

    # a container on the default bridge joins the user network while it runs, then leaves it
    dy("run", "-d", "--name", "solo", "--network", "bridge", "busybox", "sleep", "300")
    dy("exec", "solo", "wget", "-T", "2", "-qO-", f"http://{NET}.50/", ok=False)
    dy("network", "connect", "--alias", "lonely", "app", "solo")
    assert dy("exec", "solo", "wget", "-qO-", "http://web/").stdout == PAGE
    assert "lonely" in dy("exec", "web", "cat", "/etc/hosts").stdout  # peers learn its name
    dy("network", "disconnect", "app", "solo")
    dy("exec", "solo", "wget", "-T", "2", "-qO-", f"http://{NET}.50/", ok=False)
    assert "lonely" not in dy("exec", "web", "cat", "/etc/hosts").stdout

    assert "active endpoints" in dy("network", "rm", "app", ok=False).stderr
    dy("rm", "-f", "web")
    dy("network", "rm", "app")
    assert "app" not in dy("network", "ls", "-q").stdout.split()
    assert not any(line.split(":")[1].strip().startswith("dy-" + net_id[:12])
                   for line in subprocess.run(["ip", "-o", "link"], capture_output=True,
                                              text=True).stdout.splitlines())


def test_flags_refused_where_docker_refuses_them(dy):
    assert "user defined networks" in dy("run", "--rm", "--network", "bridge", "--ip", "172.30.9.9",
                                         "busybox", "true", ok=False).stderr
    assert "not found" in dy("run", "--rm", "--network", "nosuchnet", "busybox", "true",
                             ok=False).stderr
    assert "reserved" in dy("network", "create", "host", ok=False).stderr
    assert "pre-defined" in dy("network", "rm", "bridge", ok=False).stderr

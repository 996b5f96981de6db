"""`dockyard run --userns=private`: the container's root is host uid 100000 (the default range, or
the `dockyard` entry of /etc/subuid), seen from inside, from the host and at the file level."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from node.engine import userns
from tests.e2e.node_run_support import Dockyard, busybox_layer, leaks, runtime  # noqa: F401
from tests.helpers import need_root, purge_networks

pytestmark = [pytest.mark.root, pytest.mark.e2e]

MAPS = userns.mappings()
HOST_UID, HOST_GID = userns.host_root(MAPS)
SIZE = MAPS["uid"][0]["size"]


@pytest.fixture
def base():
    """A data root the mapped root can traverse to (pytest's own tmp dirs are 0700)."""
    need_root()
    d = Path(tempfile.mkdtemp(prefix="dockyard-userns-"))
    os.chmod(d, 0o711)
    yield d
    purge_networks(d / "root")  # the default bridge outlives its containers, like docker0
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def udy(busybox_layer, base):
    d = Dockyard(base / "root", busybox_layer)
    yield d
    ids = d("ps", "-aq").stdout.split()
    if ids:
        d("rm", "-f", "-v", *ids)
    assert leaks(d.root) == []


def test_root_inside_is_an_unprivileged_host_uid(udy, runtime):
    out = udy.out("run", "--rm", "--runtime", runtime, "--userns=private", "busybox", "sh", "-c",
                  "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; stat -c %u:%g /bin/busybox /etc/passwd; "
                  "touch /bin/new && echo write=ok")
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["0"] and lines[1] == ["0"]
    assert lines[2] == ["0", str(HOST_UID), str(SIZE)]
    assert lines[3] == ["0", str(HOST_GID), str(MAPS["gid"][0]["size"])]
    assert lines[4] == ["0:0"] and lines[5] == ["0:0"]  # the image's files belong to the container's root
    assert lines[6] == ["write=ok"]


def test_default_is_the_host_namespace(udy):
    out = udy.out("run", "--rm", "busybox", "cat", "/proc/self/uid_map").split()
    assert out == ["0", "0", "4294967295"]
    assert udy("run", "--rm", "--userns=bogus", "busybox", "true").returncode == 125


def test_files_land_in_upper_as_host_uid_and_image_is_untouched(udy, busybox_layer):
    cid = udy.out("run", "-d", "--userns=private", "-w", "/new/work", "busybox", "sh", "-c",
                  "echo hi > /made; mkdir /bin/d; touch /new/work/f; sleep 60").strip()
    info = udy.inspect(cid)
    upper = udy.root / "containers" / info["Id"] / "upper"
    for _ in range(100):
        if (upper / "new" / "work" / "f").exists():
            break
        import time
        time.sleep(0.05)
    for path in (upper / "made", upper / "bin" / "d", upper / "new" / "work", upper / "new" / "work" / "f"):
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (HOST_UID, HOST_GID), path
    # the container's processes run as the mapped uid on the host
    with open(f"/proc/{info['State']['Pid']}/status") as f:
        uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
    assert uids == [str(HOST_UID)] * 4
    # exec joins the same user namespace
    out = udy.out("exec", cid, "sh", "-c", "id -u; cat /proc/self/uid_map; stat -c %u /made").split()
    assert out == ["0", "0", str(HOST_UID), str(SIZE), "0"]
    udy.out("rm", "-f", cid)
    # the layer on disk kept its owners, and removing the container left it whole
    assert (busybox_layer / "bin" / "busybox").stat().st_uid == 0
    assert (busybox_layer / "etc" / "passwd").read_text().startswith("root:")
    assert not (busybox_layer / "made").exists()


def test_container_root_is_not_host_root(udy, base):
    host_dir = base / "host-owned"
    host_dir.mkdir(mode=0o755)
    os.chmod(host_dir, 0o755)
    script = "touch /h/x && echo wrote || echo refused; cat /h/secret || echo unreadable"
    (host_dir / "secret").write_text("s3cret\n")
    os.chmod(host_dir / "secret", 0o600)
    private = udy("run", "--rm", "--userns=private", "-v", f"{host_dir}:/h", "busybox", "sh", "-c", script)
    assert "refused" in private.stdout and "unreadable" in private.stdout, private
    assert "Permission denied" in private.stderr
    assert not (host_dir / "x").exists()
    # the same container without --userns is host root: the check above can fail
    shared = udy.out("run", "--rm", "-v", f"{host_dir}:/h", "busybox", "sh", "-c", script)
    assert "wrote" in shared and "s3cret" in shared


def test_engine_files_and_anonymous_volumes_belong_to_container_root(udy):
    out = udy.out("run", "--rm", "--userns=private", "busybox", "sh", "-c",
                  "echo 10.9.9.9 extra >> /etc/hosts && echo hosts=ok; stat -c %u /seeded /seeded/from-image.txt; "
                  "touch /seeded/new && echo volume=ok")
    assert out.split() == ["hosts=ok", "0", "0", "volume=ok"]


def test_unreachable_data_root_is_refused_clearly(busybox_layer, base):
    locked = base / "locked"
    locked.mkdir(mode=0o700)
    os.chmod(locked, 0o700)
    d = Dockyard(locked / "root", busybox_layer)
    result = d("run", "--rm", "--userns=private", "busybox", "true")
    assert result.returncode == 125
    assert "needs search permission" in result.stderr
    assert leaks(d.root) == []


def test_bundle_follows_the_runtime_spec(udy):
    cid = udy.out("run", "-d", "--userns=private", "busybox", "sleep", "30").strip()
    spec = json.loads((udy.root / "containers" / cid / "bundle" / "config.json").read_text())
    linux = spec["linux"]
    assert {"type": "user"} in linux["namespaces"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": HOST_UID, "size": SIZE}]
    assert linux["gidMappings"] == MAPS["gid"]
    assert udy.inspect(cid)["HostConfig"]["UsernsMode"] == "private"


def test_subuid_range_of_the_dockyard_user(tmp_path):
    (tmp_path / "subuid").write_text("alice:100000:65536\ndockyard:300000:65536\n")
    (tmp_path / "subgid").write_text("dockyard:400000:1000000\n")
    maps = userns.mappings(str(tmp_path))
    assert maps["uid"] == [{"containerID": 0, "hostID": 300000, "size": 65536}]
    assert maps["gid"] == [{"containerID": 0, "hostID": 400000, "size": 65536}]
    assert userns.mappings(str(tmp_path / "none"))["uid"][0]["hostID"] == userns.DEFAULT_RANGE[0]

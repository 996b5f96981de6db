"""`run --mount` (bind, volume, tmpfs) and `run --device`, each in the real container and on every
runtime; --mount's syntax errors side by side with the docker CLI's own (it checks them before it
talks to any daemon), the host checks with docker's daemon texts."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.e2e.node_run_support import busybox_layer, dy, runtime  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.e2e]

DOCKER = "/usr/local/bin/docker"


def _mountinfo(out: str, target: str) -> list[str]:
    return next(line.split() for line in out.splitlines() if line.split()[4:5] == [target])


def test_mount_bind_volume_tmpfs_in_the_container(dy, runtime, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("from-host\n")
    script = ("cat /data/f; touch /data/x 2>/dev/null && echo wrote; echo kept > /vol/k; "
              "stat -c %a /t; cat /proc/self/mountinfo")
    out = dy.out("run", "--name", "m", "--runtime", runtime, "--network", "none",
                 "--mount", f"type=bind,source={src},target=/data,readonly",
                 "--mount", "type=volume,src=keep,dst=/vol",
                 "--mount", "type=tmpfs,destination=/t,tmpfs-size=2m,tmpfs-mode=1770",
                 "busybox", "sh", "-c", script)
    lines = out.splitlines()
    assert lines[0] == "from-host" and "wrote" not in lines          # read-only bind
    assert lines[1] == "1770"
    assert _mountinfo(out, "/data")[5].startswith("ro")
    tmpfs = _mountinfo(out, "/t")
    assert "size=2048k" in tmpfs[-1] and tmpfs[-3] == "tmpfs"
    assert not (src / "x").exists()
    # the named volume outlives the container, and -v sees the same volume
    again = dy.out("run", "--rm", "--runtime", runtime, "--network", "none", "-v", "keep:/again", "busybox",
                   "cat", "/again/k")
    assert again == "kept\n"
    mounts = {m["Destination"]: m for m in dy.inspect("m")["Mounts"]}
    assert mounts["/data"]["Type"] == "bind" and mounts["/data"]["RW"] is False
    assert mounts["/data"]["Propagation"] == "rprivate"
    assert mounts["/vol"]["Type"] == "volume" and mounts["/vol"]["Name"] == "keep"
    assert mounts["/t"]["Type"] == "tmpfs"
    hc = dy.inspect("m")["HostConfig"]["Mounts"]
    assert hc[0] == {"Type": "bind", "Source": str(src), "Target": "/data", "ReadOnly": True}
    assert hc[2]["TmpfsOptions"] == {"SizeBytes": 2 * 1024 * 1024, "Mode": 0o1770}
    dy.out("rm", "m")
    dy.out("volume", "rm", "keep")


def test_mount_volume_opt_mounts_with_the_local_drivers_options(dy, runtime):
    out = dy.out("run", "--rm", "--runtime", runtime, "--network", "none", "--mount",
                 'type=volume,src=scratch,dst=/v,volume-opt=type=tmpfs,volume-opt=device=tmpfs,'
                 '"volume-opt=o=size=3m,mode=700"', "busybox", "sh", "-c", "stat -c %a /v; cat /proc/self/mountinfo")
    assert out.splitlines()[0] == "700"
    line = _mountinfo(out, "/v")
    assert line[-3] == "tmpfs" and "size=3072k" in line[-1]
    assert json.loads(dy.out("volume", "inspect", "scratch"))[0]["Options"] == {
        "type": "tmpfs", "device": "tmpfs", "o": "size=3m,mode=700"}
    dy.out("volume", "rm", "scratch")


MOUNT_SYNTAX = [
    "type=bind",
    "type=bind,target=/x,foo=1",
    "target=/x,readonly=maybe",
    "type=volume,target=/x,tmpfs-size=1m",
    "type=tmpfs,target=/x,tmpfs-size=lots",
    "type=tmpfs,target=/x,tmpfs-mode=9",
    "type=bind,bogus",
    "type=tmpfs,target=/x,volume-opt=a=b",
    "type=,target=/x",
]


def _docker_flag_error(flag: str, value: str) -> str:
    """The docker CLI's own message for a bad flag value (no daemon needed: it is refused first)."""
    env = dict(os.environ, DOCKER_HOST="unix:///nonexistent/docker.sock")
    r = subprocess.run([DOCKER, "run", "--rm", flag, value, "busybox", "true"], capture_output=True, text=True,
                       env=env, timeout=30)
    return r.stderr.splitlines()[0]


def test_mount_syntax_errors_read_as_dockers(dy):
    if not os.access(DOCKER, os.X_OK):
        pytest.skip("needs the docker 28 CLI at /usr/local/bin/docker")
    for spec in MOUNT_SYNTAX:
        r = dy("run", "--rm", "--network", "none", "--mount", spec, "busybox", "true")
        assert r.returncode == 125 and r.stderr.count("\n") == 1, (spec, r.stderr)
        assert r.stderr.strip() == "Error: " + _docker_flag_error("--mount", spec), spec
    assert dy.out("ps", "-aq").strip() == ""


def test_mount_host_checks_and_a_missing_bind_source(dy, tmp_path):
    missing = tmp_path / "nope"
    for spec, words in ((f"type=bind,src={missing},dst=/x", f'invalid mount config for type "bind": '
                                                             f"bind source path does not exist: {missing}"),
                        ("type=bind,dst=/x", 'invalid mount config for type "bind": field Source must not be empty'),
                        ("type=tmpfs,src=/tmp,dst=/x", 'invalid mount config for type "tmpfs": '
                                                       "field Source must not be specified"),
                        ("type=nfs,dst=/x", 'invalid mount config for type "nfs": mount type unknown'),
                        ("type=volume,dst=rel", "'rel' mount path must be absolute"),
                        (f"type=bind,src={tmp_path},dst=/x,bind-propagation=sideways", "invalid propagation mode")):
        r = dy("run", "--rm", "--network", "none", "--mount", spec, "busybox", "true")
        assert r.returncode == 125 and words in r.stderr and r.stderr.count("\n") == 1, (spec, r.stderr)
    assert not missing.exists()                        # --mount never creates the source...
    dy.out("run", "--rm", "--network", "none", "-v", f"{missing}:/x", "busybox", "true")
    assert missing.is_dir()                            # ...-v does, as docker's
    r = dy("run", "--rm", "--network", "none", "--mount", f"type=bind,src={tmp_path},dst=/x", "-v", "/tmp:/x",
           "busybox", "true")
    assert r.returncode == 125 and "Duplicate mount point: /x" in r.stderr


def test_device_node_and_cgroup_rule(dy, runtime):
    if not os.path.exists("/dev/fuse"):
        pytest.skip("needs /dev/fuse on the host")
    st = os.stat("/dev/fuse")
    script = "stat -c '%t %T %F' /dev/myfuse; : < /dev/myfuse && echo opened; (: > /dev/myfuse) 2>&1 || true"
    out = dy.out("run", "--rm", "--runtime", runtime, "--network", "none", "--device", "/dev/fuse:/dev/myfuse:r",
                 "busybox", "sh", "-c", script).splitlines()
    assert out[0] == f"{os.major(st.st_rdev):x} {os.minor(st.st_rdev):x} character special file"
    assert out[1] == "opened"
    assert "Operation not permitted" in out[2]          # r only: the cgroup refuses a write open
    # without --device the same node, made by the container itself, cannot be opened
    r = dy("run", "--rm", "--runtime", runtime, "--network", "none", "busybox", "sh", "-c",
           f"mknod /dev/f c {os.major(st.st_rdev)} {os.minor(st.st_rdev)} && : < /dev/f")
    assert r.returncode != 0 and "Operation not permitted" in r.stderr
    cid = dy.out("create", "--network", "none", "--device", "/dev/fuse", "busybox", "true").strip()
    assert dy.inspect(cid)["HostConfig"]["Devices"] == [
        {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"}]


def test_bad_devices_are_refused_in_one_line(dy):
    for spec, words in (("/etc/passwd", 'adding custom device "/etc/passwd": not a device node'),
                        ("/dev/nope", 'adding custom device "/dev/nope": no such file or directory'),
                        ("/dev/null:rel", "rel is not an absolute path"),
                        ("/dev/null:/x:rwz", "bad mode specified: rwz"),
                        ("/dev/null:/x:rw:z", "bad format for path")):
        r = dy("run", "--rm", "--network", "none", "--device", spec, "busybox", "true")
        assert r.returncode == (127 if spec == "/dev/nope" else 125) and words in r.stderr and r.stderr.count("\n") == 1, (spec, r.stderr)
    assert dy.out("ps", "-aq").strip() == ""


def test_mount_volume_is_seeded_from_the_image_unless_nocopy(dy):
    seeded = dy.out("run", "--rm", "--network", "none", "--mount", "type=volume,src=seed1,dst=/seeded",
                    "busybox", "ls", "/seeded")
    bare = dy.out("run", "--rm", "--network", "none", "--mount", "type=volume,src=seed2,dst=/seeded,volume-nocopy",
                  "busybox", "ls", "/seeded")
    assert seeded.split() == ["from-image.txt"] and bare.split() == []
    dy.out("volume", "rm", "seed1", "seed2")


def test_device_in_a_user_namespace_is_the_hosts_node(busybox_layer, runtime):  # noqa: F811
    """mknod is refused in a user namespace: the host's node is bound instead, as runc does."""
    import shutil
    import tempfile
    from pathlib import Path

    from tests.e2e.node_run_support import Dockyard, leaks
    if not os.path.exists("/dev/fuse"):
        pytest.skip("needs /dev/fuse on the host")
    base = Path(tempfile.mkdtemp(prefix="dockyard-devuserns-"))
    os.chmod(base, 0o711)                # the mapped root must reach the data root
    d = Dockyard(base / "root", busybox_layer)
    try:
        st = os.stat("/dev/fuse")
        out = d.out("run", "--rm", "--runtime", runtime, "--network", "none", "--userns", "private",
                    "--device", "/dev/fuse", "busybox", "stat", "-c", "%t %T", "/dev/fuse")
        assert out.split() == [f"{os.major(st.st_rdev):x}", f"{os.minor(st.st_rdev):x}"]
        assert leaks(d.root) == []
    finally:
        from tests.helpers import purge_networks
        purge_networks(d.root)
        shutil.rmtree(base, ignore_errors=True)

"""This session's `run` flags side by side with docker on the same image (docker-built busybox,
`docker save`d, `dockyard load`ed): --init, health checks, --mount, --device, --dns-option give
the same container files, the same inspect fields and the same errors."""
from __future__ import annotations

import json
import os
import time
import uuid

import pytest

from tests.e2e.node_images_support import dockyard, load_docker_built_busybox

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.root, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def both(dockerd, tmp_path_factory):
    work = tmp_path_factory.mktemp("flagparity")
    root, imgs = load_docker_built_busybox(dockerd, work, f"flags{uuid.uuid4().hex[:6]}")

    def dy(*args, check=True):
        r = dockyard(root, *args)
        assert not check or r.returncode == 0, (args, r.stderr)
        return r
    yield dockerd, dy, imgs.one, work
    ids = dy("ps", "-aq").stdout.split()
    if ids:
        dy("rm", "-f", "-v", *ids)
    dockerd.run("rm", "-f", *dockerd.run("ps", "-aq").stdout.split(), check=False)
    dockerd.run("rmi", "-f", *imgs.tags, check=False)


def _run_both(both, *args):
    docker, dy, image, _ = both
    flags, cmd = args[0], args[1:]
    theirs = docker.run("run", "--rm", "--network", "none", *flags, image, *cmd, check=False)
    ours = dy("run", "--rm", "--network", "none", *flags, image, *cmd, check=False)
    return theirs, ours


def test_init_pid_1_and_exit_code_as_docker(both):
    theirs, ours = _run_both(both, ["--init"], "sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline; exit 42")
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout) == (42, theirs.stdout)
    assert theirs.stdout.startswith("/sbin/docker-init -- sh")


def test_dns_option_and_device_files_as_docker(both):
    script = "grep ^options /etc/resolv.conf; stat -c '%t %T %a' /dev/xnull; echo x > /dev/xnull && echo wrote"
    flags = ["--dns-option", "ndots:3", "--dns-option", "attempts:2", "--device", "/dev/null:/dev/xnull:rw"]
    theirs, ours = _run_both(both, flags, "sh", "-c", script)
    assert theirs.returncode == 0 and ours.stdout == theirs.stdout, (theirs.stdout, ours.stdout, ours.stderr)


def _wait_health(get, status: str) -> dict:
    deadline = time.monotonic() + 30
    while True:
        health = get()["State"].get("Health") or {}
        if health.get("Status") == status:
            return health
        assert time.monotonic() < deadline, health
        time.sleep(0.2)


def test_health_states_inspect_and_ps_as_docker(both):
    docker, dy, image, _ = both
    name = f"h{uuid.uuid4().hex[:6]}"
    flags = ["--health-cmd", "test -e /tmp/ok && echo ok", "--health-interval", "250ms", "--health-retries", "2",
             "--health-start-period", "1ms"]
    cmd = ["sh", "-c", "sleep 3; touch /tmp/ok; sleep 600"]
    docker.run("run", "-d", "--name", name, "--network", "none", *flags, image, *cmd)
    dy("run", "-d", "--name", name, "--network", "none", *flags, image, *cmd)
    theirs_get = lambda: json.loads(docker.run("inspect", name).stdout)[0]  # noqa: E731
    ours_get = lambda: json.loads(dy("inspect", name).stdout)[0]  # noqa: E731
    for status, words in (("unhealthy", "(unhealthy)"), ("healthy", "(healthy)")):
        theirs, ours = _wait_health(theirs_get, status), _wait_health(ours_get, status)
        assert set(ours) == set(theirs) and set(ours["Log"][-1]) == set(theirs["Log"][-1])
        assert (ours["Log"][-1]["ExitCode"], ours["Log"][-1]["Output"]) == \
            (theirs["Log"][-1]["ExitCode"], theirs["Log"][-1]["Output"])
        for ps in (docker.run("ps", "--filter", f"name={name}", "--format", "{{.Status}}").stdout,
                   dy("ps", "--format", "{{.Status}}").stdout):
            assert ps.strip().endswith(words), ps
    assert ours_get()["Config"]["Healthcheck"] == theirs_get()["Config"]["Healthcheck"]
    docker.run("rm", "-f", name)
    dy("rm", "-f", name)


def test_mount_records_and_errors_as_docker(both):
    docker, dy, image, work = both
    src = work / "bindsrc"
    src.mkdir(exist_ok=True)
    vol = f"v{uuid.uuid4().hex[:6]}"
    flags = ["--mount", f"type=bind,src={src},dst=/b,ro", "--mount", f"type=volume,src={vol},dst=/v",
             "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=700"]
    theirs_id = docker.run("create", "--network", "none", *flags, image, "true").stdout.strip()
    ours_id = dy("create", "--network", "none", *flags, image, "true").stdout.strip()
    theirs = json.loads(docker.run("inspect", theirs_id).stdout)[0]
    ours = json.loads(dy("inspect", ours_id).stdout)[0]
    assert ours["HostConfig"]["Mounts"] == theirs["HostConfig"]["Mounts"]

    def points(doc):
        return {m["Destination"]: (m["Type"], m["RW"], m.get("Propagation"), m.get("Name")) for m in doc["Mounts"]
                if m["Type"] != "tmpfs"}     # docker does not list tmpfs mounts in Mounts
    assert points(ours) == points(theirs)
    docker.run("rm", "-v", theirs_id)
    dy("rm", "-v", ours_id)
    docker.run("volume", "rm", vol, check=False)
    dy("volume", "rm", vol, check=False)
    for spec in (f"type=bind,src={work}/nope,dst=/x", "type=tmpfs,src=/tmp,dst=/x", "type=bind,dst=/x"):
        theirs, ours = _run_both(both, ["--mount", spec], "true")
        assert theirs.returncode == ours.returncode == 125
        assert ours.stderr.strip().removeprefix("Error: ") in theirs.stderr, (theirs.stderr, ours.stderr)
    assert not os.path.exists(work / "nope")
    for spec in ("/etc/passwd", "/dev/nope"):
        theirs, ours = _run_both(both, ["--device", spec], "true")
        assert theirs.returncode == ours.returncode
        assert ours.stderr.strip().removeprefix("Error: ") in theirs.stderr, (theirs.stderr, ours.stderr)

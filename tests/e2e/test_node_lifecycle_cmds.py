"""`rename`, `commit`, `import`, `update` and `events` side by side with docker, on the same image
(docker-built, `docker save`d, `dockyard load`ed): a committed image runs with the change and the
-c config; `docker export` output imports and runs; a renamed container answers to its new name
only; `update` rewrites a running container's cgroup files as docker's; `events` tells a
container's life in docker's order and line format."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests import images
from tests.e2e.node_images_support import DOCKYARD
from tests.e2e.node_images_support import dockyard as _dockyard
from tests.e2e.node_run_support import CGROUP_PARENT

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.root, pytest.mark.timeout(300)]

ENV = {"DOCKYARD_CGROUP_PARENT": CGROUP_PARENT}
CHANGES = ['CMD ["sh", "-c", "cat /new; echo $GREETING; pwd; id -u"]', "ENV GREETING=hello", "WORKDIR /data",
           "EXPOSE 8080/tcp", "LABEL org.example.k=v", "USER 1000"]


def dy(root, *args, **kw):
    return _dockyard(root, *args, env=ENV, **kw)


def _ok(r):
    assert r.returncode == 0, (r.args, r.stdout, r.stderr)
    return r


@pytest.fixture(scope="module")
def side(dockerd, tmp_path_factory):
    work = tmp_path_factory.mktemp("lifecmds")
    prefix = f"lc{uuid.uuid4().hex[:6]}"
    imgs = images.docker_build_busybox(dockerd, work / "build", prefix)
    dockerd.run("save", "-o", str(work / "one.tar"), imgs.one)
    root = work / "root"
    _ok(dy(root, "load", "-i", str(work / "one.tar")))
    names: list[str] = []
    made: list[str] = []
    yield root, imgs, dockerd, work, prefix, names, made
    for name in names:
        dockerd.run("rm", "-f", name, check=False)
        dy(root, "rm", "-f", name)
    dockerd.run("rmi", "-f", *imgs.tags, *made, check=False)


def _both_run(side, name: str, command: list[str], *flags: str) -> None:
    """``run -d`` of the same container under docker and dockyard."""
    root, imgs, docker, *_rest, names, _made = side
    names.append(name)
    docker.run("run", "-d", "--name", name, "--network", "none", *flags, imgs.one, *command)
    _ok(dy(root, "run", "-d", "--name", name, "--network", "none", *flags, imgs.one, *command))


def _wait_file(side, name: str, path: str) -> None:
    root, _imgs, docker, *_ = side
    for _ in range(100):
        if dy(root, "exec", name, "test", "-e", path).returncode == 0 and \
                docker.run("exec", name, "test", "-e", path, check=False).returncode == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared in {name}")


def test_commit_runs_with_the_change_and_the_config(side):
    root, imgs, docker, _work, prefix, names, made = side
    name = f"{prefix}-commit"
    _both_run(side, name, ["sh", "-c", "echo committed > /new; rm /one.txt; touch /ready; sleep 300"])
    _wait_file(side, name, "/ready")
    tag = f"{prefix}-committed:1"
    made.append(tag)
    flags = [a for c in CHANGES for a in ("-c", c)] + ["-m", "the message", "-a", "Jane <jane@example.com>"]
    theirs_id = docker.run("commit", *flags, name, tag).stdout.strip()
    ours_id = _ok(dy(root, "commit", *flags, name, tag)).stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", ours_id) and theirs_id.startswith("sha256:")
    # the container kept running through the commit (paused, then thawed)
    assert json.loads(_ok(dy(root, "inspect", name)).stdout)[0]["State"]["Status"] == "running"

    run = ["run", "--rm", "--network", "none", tag]
    theirs, ours = docker.run(*run).stdout, _ok(dy(root, *run)).stdout
    assert ours == theirs == "committed\nhello\n/data\n1000\n"
    gone = ["run", "--rm", "--network", "none", "--user", "0", tag, "test", "-e", "/one.txt"]
    assert dy(root, *gone).returncode == docker.run(*gone, check=False).returncode == 1

    want = ("Cmd", "Env", "WorkingDir", "ExposedPorts", "Labels", "User", "Entrypoint", "StopSignal")
    their_cfg = json.loads(docker.run("image", "inspect", tag).stdout)[0]
    our_cfg = json.loads(_ok(dy(root, "image", "inspect", tag)).stdout)[0]
    assert {k: our_cfg["Config"].get(k) or None for k in want} == {k: their_cfg["Config"].get(k) or None for k in want}
    assert our_cfg["Author"] == their_cfg["Author"] == "Jane <jane@example.com>"
    assert our_cfg["Comment"] == their_cfg["Comment"] == "the message"
    assert our_cfg["Id"] == ours_id
    hist = ["history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}", tag]
    assert _ok(dy(root, *hist)).stdout.splitlines()[0] == docker.run(*hist).stdout.splitlines()[0]
    # one new layer on top of the base's, the commit's own
    assert len(our_cfg["RootFS"]["Layers"]) == len(their_cfg["RootFS"]["Layers"])


def test_commit_errors_as_docker(side):
    root, _imgs, docker, _work, prefix, *_ = side
    for args in (["commit", f"{prefix}-nosuch"], ["commit", "-c", "RUN true", f"{prefix}-commit"],
                 ["commit", "--pause=maybe", f"{prefix}-commit"]):
        theirs, ours = docker.run(*args, check=False), dy(root, *args)
        assert ours.returncode == theirs.returncode != 0, (args, ours.stderr, theirs.stderr)
        assert len(ours.stderr.strip().splitlines()) == 1, ours.stderr
    ours = dy(root, "commit", "-c", "RUN true", f"{prefix}-commit")
    assert "run is not a valid change command" in ours.stderr


def test_import_of_docker_export_runs(side):
    root, imgs, docker, work, prefix, names, made = side
    name = f"{prefix}-export"
    names.append(name)
    docker.run("create", "--name", name, imgs.one)
    tarball = work / "exported.tar"
    docker.run("export", "-o", str(tarball), name)
    tag = f"{prefix}-imported:1"
    made.append(tag)
    flags = ["-c", 'CMD ["cat", "/one.txt"]', "-c", "ENV IMPORTED=yes", "-m", "from docker"]
    theirs_id = docker.run("import", *flags, str(tarball), tag).stdout.strip()
    ours_id = _ok(dy(root, "import", *flags, str(tarball), tag)).stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", ours_id) and theirs_id.startswith("sha256:")
    run = ["run", "--rm", "--network", "none", tag]
    assert _ok(dy(root, *run)).stdout == docker.run(*run).stdout == "image one\n"
    env = ["run", "--rm", "--network", "none", tag, "sh", "-c", "echo $IMPORTED; ls /data"]
    assert _ok(dy(root, *env)).stdout == docker.run(*env).stdout
    their_cfg = json.loads(docker.run("image", "inspect", tag).stdout)[0]
    our_cfg = json.loads(_ok(dy(root, "image", "inspect", tag)).stdout)[0]
    assert our_cfg["Config"]["Cmd"] == their_cfg["Config"]["Cmd"]
    assert our_cfg["Config"]["Env"] == their_cfg["Config"]["Env"]
    assert our_cfg["Comment"] == their_cfg["Comment"] == "from docker"
    # the same layer: the tarball is the layer, so the diff_id is the tarball's digest
    assert our_cfg["RootFS"]["Layers"] == their_cfg["RootFS"]["Layers"]

    # from stdin, gzip-compressed, without a tag: the ID alone, runnable by it
    gz = subprocess.run(["gzip", "-c", str(tarball)], capture_output=True, check=True).stdout
    r = subprocess.run([str(DOCKYARD), "--root", str(root), "import", "-"], input=gz, capture_output=True,
                       env=dict(os.environ, **ENV), timeout=120)
    assert r.returncode == 0, r.stderr
    image_id = r.stdout.decode().strip()
    assert _ok(dy(root, "run", "--rm", "--network", "none", image_id, "cat", "/one.txt")).stdout == "image one\n"
    hist = _ok(dy(root, "history", "--format", "{{.Comment}}", image_id)).stdout.strip()
    assert hist == "Imported from -"

    # not a tarball: one line, no image
    bad = dy(root, "import", "-", input="this is not a tar")
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_rename_keeps_it_reachable_by_the_new_name_only(side):
    root, _imgs, docker, _work, prefix, names, _made = side
    old, new, other = f"{prefix}-old", f"{prefix}-new", f"{prefix}-other"
    _both_run(side, old, ["sleep", "300"])
    _both_run(side, other, ["sleep", "300"])
    names.append(new)
    cid = json.loads(_ok(dy(root, "inspect", old)).stdout)[0]["Id"]
    assert docker.run("rename", old, new).stdout == _ok(dy(root, "rename", old, new)).stdout == ""
    assert _ok(dy(root, "exec", new, "echo", "here")).stdout == "here\n"
    assert json.loads(_ok(dy(root, "inspect", new)).stdout)[0]["Id"] == cid
    assert json.loads(_ok(dy(root, "inspect", new)).stdout)[0]["Name"] == f"/{new}"
    ps = ["ps", "--format", "{{.Names}}", "--filter", f"name={prefix}-"]
    assert sorted(_ok(dy(root, *ps)).stdout.split()) == sorted(docker.run(*ps).stdout.split())
    for args in (["exec", old, "true"], ["rename", new, other], ["rename", new, new], ["rename", old, "x"],
                 ["rename", new, "bad/name"]):
        theirs, ours = docker.run(*args, check=False), dy(root, *args)
        assert ours.returncode == theirs.returncode != 0, (args, ours.stderr, theirs.stderr)
        assert len(ours.stderr.strip().splitlines()) == 1
    taken = dy(root, "rename", new, other).stderr
    assert f'The container name "/{other}" is already in use by container' in taken


def _cgroup_file(pid: int, controller: str, name: str) -> str:
    """A process's cgroup file for ``controller`` (v1), read through /proc/PID/cgroup."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return (Path("/sys/fs/cgroup") / controllers / path.lstrip("/") / name).read_text().strip()
    raise AssertionError(f"no {controller} cgroup for {pid}")


def test_update_changes_the_running_containers_cgroup(side):
    root, _imgs, docker, _work, prefix, names, _made = side
    if not Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists():
        pytest.skip("cgroup v1 memory controller is not mounted")
    name = f"{prefix}-update"
    _both_run(side, name, ["sleep", "300"], "--memory", "64m")
    flags = ["--memory", "96m", "--memory-swap", "192m", "--cpus", "0.5", "--cpu-shares", "512",
             "--pids-limit", "50", "--restart", "on-failure:3"]
    assert docker.run("update", *flags, name).stdout.strip() == name
    assert _ok(dy(root, "update", *flags, name)).stdout.strip() == name
    files = [("memory", "memory.limit_in_bytes"), ("memory", "memory.memsw.limit_in_bytes"),
             ("cpu", "cpu.cfs_quota_us"), ("cpu", "cpu.cfs_period_us"), ("cpu", "cpu.shares"), ("pids", "pids.max")]
    d_pid = int(docker.run("inspect", "--format", "{{.State.Pid}}", name).stdout)
    o_pid = int(_ok(dy(root, "inspect", "--format", "{{.State.Pid}}", name)).stdout)
    theirs = {f: _cgroup_file(d_pid, c, f) for c, f in files}
    ours = {f: _cgroup_file(o_pid, c, f) for c, f in files}
    assert ours == theirs, (ours, theirs)
    assert ours["memory.limit_in_bytes"] == str(96 << 20) and ours["pids.max"] == "50"
    keys = ("Memory", "MemorySwap", "NanoCpus", "CpuShares", "PidsLimit", "RestartPolicy")
    their_hc = json.loads(docker.run("inspect", name).stdout)[0]["HostConfig"]
    our_hc = json.loads(_ok(dy(root, "inspect", name)).stdout)[0]["HostConfig"]
    assert {k: our_hc[k] for k in keys} == {k: their_hc[k] for k in keys}
    # kept in the record: a restart comes back with the new limits
    _ok(dy(root, "restart", "-t", "0", name))
    o_pid = int(_ok(dy(root, "inspect", "--format", "{{.State.Pid}}", name)).stdout)
    assert _cgroup_file(o_pid, "memory", "memory.limit_in_bytes") == str(96 << 20)
    assert _cgroup_file(o_pid, "cpu", "cpu.shares") == "512"
    # docker's refusals, one line each
    for args in (["update", name], ["update", "--memory", "300m", name], ["update", "--memory", "1m", name]):
        theirs, ours = docker.run(*args, check=False), dy(root, *args)
        assert ours.returncode == theirs.returncode != 0, (args, ours.stderr, theirs.stderr)
        assert len(ours.stderr.strip().splitlines()) == 1, ours.stderr


_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9})(Z|[+-]\d\d:\d\d) (\w+) (\w+(?:: [\w ]+)?) "
                   r"([0-9a-f]{64}) \((.*)\)$")


def _lifecycle(tool, name: str, renamed: str) -> None:
    tool("run", "-d", "--name", name, "--network", "none", "--label", "org.example.k=v", "IMG", "sleep", "300")
    tool("pause", name)
    tool("unpause", name)
    tool("exec", name, "true")
    tool("rename", name, renamed)
    tool("kill", "-s", "USR1", renamed)
    tool("stop", "-t", "1", renamed)
    tool("start", renamed)
    tool("rm", "-f", renamed)


def test_events_tell_a_life_in_dockers_order_and_format(side):
    root, imgs, docker, _work, prefix, names, _made = side
    name, renamed = f"{prefix}-ev", f"{prefix}-ev2"
    names += [name, renamed]

    def theirs_cmd(*args):
        return docker.run(*[imgs.one if a == "IMG" else a for a in args]).stdout.strip()

    def ours_cmd(*args):
        return _ok(dy(root, *[imgs.one if a == "IMG" else a for a in args])).stdout.strip()

    results = {}
    for label, tool, events in (("docker", theirs_cmd, lambda *a: docker.run("events", *a).stdout),
                                ("dockyard", ours_cmd, lambda *a: _ok(dy(root, "events", *a)).stdout)):
        start = time.time()
        _lifecycle(tool, name, renamed)
        time.sleep(1.1)  # --until is read in whole seconds by docker's CLI
        out = events("--since", f"{start - 0.5:.3f}", "--until", f"{time.time():.3f}", "--filter", "type=container",
                     "--filter", "label=org.example.k=v")
        rows = []
        for line in out.splitlines():
            m = _LINE.match(line)
            assert m, line
            attrs = dict(kv.split("=", 1) for kv in m.group(6).split(", "))
            assert list(attrs) == sorted(attrs), line
            # die's execDuration came with docker 23; the reference dockerd here (20.10) has none
            keys = tuple(k for k in sorted(attrs) if k != "execDuration")
            rows.append((m.group(4), keys, attrs.get("signal"), attrs.get("name")))
        results[label] = rows
    ours, theirs = results["dockyard"], results["docker"]
    assert [r[0] for r in ours] == [r[0] for r in theirs], (ours, theirs)
    assert ours == theirs, (ours, theirs)
    assert [r[0] for r in ours][:2] == ["create", "start"] and ours[-1][0] == "destroy"


def test_events_stream_until_interrupted_and_take_a_format(side):
    root, imgs, _docker, _work, prefix, names, _made = side
    name = f"{prefix}-stream"
    names.append(name)
    proc = subprocess.Popen([str(DOCKYARD), "--root", str(root), "events", "--filter", f"container={name}",
                             "--format", "{{json .}}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, **ENV), text=True)
    try:
        time.sleep(1.0)  # the follower is in place
        _ok(dy(root, "run", "--rm", "--name", name, "--network", "none", imgs.one, "true"))
        deadline, seen = time.monotonic() + 20, []
        while time.monotonic() < deadline and "destroy" not in [d["Action"] for d in seen]:
            line = proc.stdout.readline()
            if line:
                seen.append(json.loads(line))
        assert [d["Action"] for d in seen] == ["create", "attach", "start", "die", "destroy"], seen
        die = seen[3]
        assert die["status"] == "die" and die["Type"] == "container" and die["Actor"]["Attributes"]["exitCode"] == "0"
        assert die["from"] == imgs.one and die["id"] == die["Actor"]["ID"] and die["scope"] == "local"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_rename_on_a_user_network_moves_the_name(side):
    """A peer finds the renamed container by its new name, and no longer by the old one."""
    root, imgs, docker, _work, prefix, names, _made = side
    net, a, b, renamed = f"{prefix}-net", f"{prefix}-na", f"{prefix}-nb", f"{prefix}-na2"
    names += [a, b, renamed]
    docker.run("network", "create", net)
    _ok(dy(root, "network", "create", net))
    try:
        for tool in (docker.run, lambda *args: _ok(dy(root, *args))):
            for name in (a, b):
                tool("run", "-d", "--name", name, "--network", net, imgs.one, "sleep", "300")
            tool("rename", a, renamed)
        for args, code in ((["exec", b, "ping", "-c", "1", "-W", "2", renamed], 0),
                           (["exec", b, "ping", "-c", "1", "-W", "2", a], 1)):
            theirs, ours = docker.run(*args, check=False), dy(root, *args)
            assert ours.returncode == theirs.returncode == code, (args, ours.stdout, ours.stderr, theirs.stderr)
    finally:
        for name in (renamed, b):
            docker.run("rm", "-f", name, check=False)
            dy(root, "rm", "-f", name)
        docker.run("network", "rm", net, check=False)
        dy(root, "network", "rm", net)


def test_events_of_a_run_on_a_network_include_the_network(side):
    """`run --rm` on a user network, unfiltered by type: docker's sequence, network events
    (connect before start, disconnect after die) included. (The test dockerd has no default
    bridge: --bridge=none.)"""
    root, imgs, docker, _work, prefix, names, _made = side
    name, net = f"{prefix}-onnet", f"{prefix}-evnet"
    names.append(name)
    docker.run("network", "create", net)
    _ok(dy(root, "network", "create", net))
    sequences = {}
    try:
        for label, run, events in (("docker", docker.run, lambda *a: docker.run("events", *a).stdout),
                                   ("dockyard", lambda *a: _ok(dy(root, *a)),
                                    lambda *a: _ok(dy(root, "events", *a)).stdout)):
            start = time.time()
            run("run", "--rm", "--name", name, "--network", net, imgs.one, "true")
            time.sleep(1.1)
            out = events("--since", f"{start - 0.5:.3f}", "--until", f"{time.time():.3f}", "--format", "{{json .}}")
            docs = [json.loads(line) for line in out.splitlines()]
            cid = next(d["Actor"]["ID"] for d in docs if d["Type"] == "container" and d["Action"] == "create"
                       and d["Actor"]["Attributes"].get("name") == name)
            sequences[label] = [
                (d["Type"], d["Action"], sorted(d["Actor"]["Attributes"].items()) if d["Type"] == "network" else None)
                for d in docs if d["Actor"]["ID"] == cid or d["Actor"]["Attributes"].get("container") == cid]
            sequences[label] = [(t, a, [(k, v) for k, v in attrs if k != "container"] if attrs else None)
                                for t, a, attrs in sequences[label]]
    finally:
        docker.run("network", "rm", net, check=False)
        dy(root, "network", "rm", net)
    assert sequences["dockyard"] == sequences["docker"], sequences
    assert ("network", "connect", [("name", net), ("type", "bridge")]) in sequences["dockyard"]

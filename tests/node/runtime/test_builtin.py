"""The built-in runtime on its own: an OCI bundle written by hand (no engine), run with cgroups
on this machine's v1 hierarchies and on the (controller-less) cgroup2 mount, which exercises the
v2 code path — cgroup.procs, cgroup.freeze/cgroup.events, removal — on a real kernel."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from node.runtime import cgroups, namespaces
from node.runtime.builtin import BuiltinRuntime, RuntimeError_
from tests.e2e.node_run_support import build_busybox_layer
from tests.helpers import need, need_root

pytestmark = pytest.mark.root
V2_ROOT = "/sys/fs/cgroup/unified"


def _spec(args: list[str], cgroups_path: str) -> dict:
    return {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": args,
                    "env": ["PATH=/bin"], "cwd": "/",
                    "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
                    "noNewPrivileges": True},
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "bundle",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}],
        "linux": {"cgroupsPath": cgroups_path, "resources": {"pids": {"limit": 20}},
                  "namespaces": [{"type": t} for t in ("pid", "mount", "uts", "ipc", "network")],
                  "maskedPaths": ["/proc/keys"], "readonlyPaths": ["/proc/sys"]},
    }


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    need(os.path.exists("/bin/busybox"), "needs busybox-static at /bin/busybox")
    return build_busybox_layer(tmp_path_factory.mktemp("bundle-image") / "rootfs")


def _bundle(tmp_path: Path, rootfs: Path, spec: dict) -> str:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    os.symlink(rootfs, bundle / "rootfs")
    (bundle / "config.json").write_text(json.dumps(spec))
    return str(bundle)


def _run(runtime: BuiltinRuntime, bundle: str, name: str, during=None) -> tuple[int, str]:
    out_r, out_w = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        created = runtime.create(name, bundle, (devnull, out_w, out_w))
    finally:
        os.close(out_w)
        os.close(devnull)
    created.start()
    if during:
        during(created.pid)
    chunks = []
    while data := os.read(out_r, 65536):
        chunks.append(data)
    os.close(out_r)
    _, status = os.waitpid(created.pid, 0)
    runtime.delete(name, bundle)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode()


def test_bundle_runs_with_v1_cgroups(tmp_path, rootfs):
    need_root()
    need(not cgroups.is_v2(), "this machine's root hierarchy is v2")
    path = f"/dockyard-rt-test-{os.getpid()}/one"
    bundle = _bundle(tmp_path, rootfs, _spec(["sh", "-c", "echo $$ $(hostname); grep pids /proc/self/cgroup; "
                                                   "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null; exit 7"], path))
    runtime = BuiltinRuntime()
    try:
        code, out = _run(runtime, bundle, "one")
        assert code == 7
        lines = out.splitlines()
        assert lines[0] == "1 bundle" and lines[1].endswith(path)
        assert not cgroups.open_cgroup(path).exists()
    finally:
        for d in Path("/sys/fs/cgroup").glob(f"*/dockyard-rt-test-{os.getpid()}"):
            d.rmdir()


def test_bundle_runs_on_a_cgroup2_hierarchy(tmp_path, rootfs):
    need_root()
    need(os.path.exists(f"{V2_ROOT}/cgroup.controllers"), f"needs a cgroup2 mount at {V2_ROOT}")
    path = f"/dockyard-rt-test-{os.getpid()}/two"
    spec = _spec(["sh", "-c", "cat /proc/self/cgroup; sleep 0.5; echo after"], path)
    spec["linux"]["resources"] = {}  # this cgroup2 mount has no controllers: limits would fail loudly
    bundle = _bundle(tmp_path, rootfs, spec)
    runtime = BuiltinRuntime(cgroup_root=V2_ROOT)
    seen = {}

    def freeze_and_thaw(pid: int) -> None:
        cg = cgroups.open_cgroup(path, V2_ROOT)
        assert cg.version == 2 and pid in cg.pids()  # sh may already have forked its `cat`
        cg.freeze()
        seen["frozen"] = "frozen 1" in Path(V2_ROOT, path.strip("/"), "cgroup.events").read_text()
        with open(f"/proc/{pid}/stat") as f:
            seen["state"] = f.read().rsplit(")", 1)[1].split()[0]
        cg.thaw()
    try:
        code, out = _run(runtime, bundle, "two", during=freeze_and_thaw)
        assert code == 0 and f"0::{path}" in out.splitlines() and out.endswith("after\n")
        assert seen["frozen"]
        assert not Path(V2_ROOT, path.strip("/")).exists()
    finally:
        parent = Path(V2_ROOT, f"dockyard-rt-test-{os.getpid()}")
        if parent.exists():
            parent.rmdir()


def test_v2_limit_without_its_controller_is_an_error(tmp_path):
    need_root()
    need(os.path.exists(f"{V2_ROOT}/cgroup.controllers"), f"needs a cgroup2 mount at {V2_ROOT}")
    need("pids" not in Path(V2_ROOT, "cgroup.controllers").read_text().split(), "pids is enabled on v2 here")
    cg = cgroups.open_cgroup(f"/dockyard-rt-test-{os.getpid()}/limits", V2_ROOT)
    try:
        with pytest.raises(OSError, match="pids controller is not available"):
            cg.create({"pids": {"limit": 5}})
    finally:
        cg.destroy()
        Path(V2_ROOT, f"dockyard-rt-test-{os.getpid()}").rmdir()


def test_failed_create_says_why_and_removes_the_cgroup(tmp_path, rootfs):
    need_root()
    path = f"/dockyard-rt-test-{os.getpid()}/bad"
    spec = _spec(["true"], path)
    spec["mounts"].append({"destination": "/broken", "type": "no-such-fs", "source": "none"})
    bundle = _bundle(tmp_path, rootfs, spec)
    try:
        with pytest.raises(RuntimeError_) as e:
            BuiltinRuntime().create("bad", bundle, None)
        assert "/broken" in str(e.value) and "no-such-fs" in str(e.value)
        assert not cgroups.open_cgroup(path).exists()
    finally:
        for d in Path("/sys/fs/cgroup").glob(f"*/dockyard-rt-test-{os.getpid()}"):
            d.rmdir()


DOCKER_DEVICE_RULES = [{"allow": False, "access": "rwm"}] + [
    {"allow": True, "type": t, "major": ma, "minor": mi, "access": "rwm" if ma is not None else "m"}
    for t, ma, mi in (("c", None, None), ("b", None, None), ("c", 1, 3), ("c", 1, 8), ("c", 1, 7),
                      ("c", 5, 0), ("c", 1, 5), ("c", 1, 9), ("c", 5, 1), ("c", 136, None),
                      ("c", 5, 2), ("c", 10, 200))]


def test_v1_init_joins_its_cgroup_itself_complete_before_start(tmp_path, rootfs, monkeypatch):
    """On v1 the cgroup is made whole (limits, the whole device filter) before P forks, and the
    init moves itself in through the `tasks` files P opened (no cgroup.procs write by P, whose
    first one after a quiet spell waits for an RCU grace period): it is in every hierarchy when
    create() returns, before `start` lets the program run, and no such fd reaches the program."""
    need_root()
    need(not cgroups.is_v2(), "this machine's root hierarchy is v2")
    path = f"/dockyard-rt-test-{os.getpid()}/order"
    spec = _spec(["sh", "-c", "ls /proc/self/fd"], path)
    spec["linux"]["resources"]["devices"] = DOCKER_DEVICE_RULES
    bundle = _bundle(tmp_path, rootfs, spec)
    events = []
    real_fork, real_create = os.fork, cgroups.V1Cgroup.create
    me = os.getpid()

    def fork():
        if os.getpid() == me:
            events.append("fork")
        return real_fork()

    def create(self, resources=None):
        events.append("cgroup")
        return real_create(self, resources)

    def add(self, pid):
        raise AssertionError("P wrote cgroup.procs")
    monkeypatch.setattr(os, "fork", fork)
    monkeypatch.setattr(cgroups.V1Cgroup, "create", create)
    monkeypatch.setattr(cgroups.V1Cgroup, "add", add)
    runtime = BuiltinRuntime()
    out_r, out_w = os.pipe()
    try:
        created = runtime.create("order", bundle, (out_w, out_w, out_w))
        os.close(out_w)
        assert events == ["cgroup", "fork"]
        cg = cgroups.open_cgroup(path)
        for d in cg.dirs.values():
            assert str(created.pid) in Path(d, "cgroup.procs").read_text().split(), d
        listed = Path(cg.dirs["devices"], "devices.list").read_text().split("\n")
        assert sorted(x for x in listed if x) == sorted([
            "c *:* m", "b *:* m", "c 1:3 rwm", "c 1:8 rwm", "c 1:7 rwm", "c 5:0 rwm", "c 1:5 rwm",
            "c 1:9 rwm", "c 5:1 rwm", "c 136:* rwm", "c 5:2 rwm", "c 10:200 rwm"])
        assert Path(cg.dirs["pids"], "pids.max").read_text().strip() == "20"
        created.start()
        fds = os.read(out_r, 1000).split()
        assert sorted(fds) == [b"0", b"1", b"2", b"3"]  # stdio and ls's own directory fd
        os.waitpid(created.pid, 0)
        runtime.delete("order", bundle)
        assert not cg.exists()
    finally:
        os.close(out_r)
        for d in Path("/sys/fs/cgroup").glob(f"*/dockyard-rt-test-{os.getpid()}"):
            for child in d.iterdir():
                if child.is_dir():
                    child.rmdir()
            d.rmdir()


def test_failed_cgroup_ends_the_waiting_init(tmp_path, rootfs, monkeypatch):
    """A cgroup that cannot be made fails create with its reason and nothing of it is left; on
    v2 (made after the fork) the init, already forked and waiting, is killed and reaped; on v1
    (made before the fork) there is no init yet."""
    need_root()
    path = f"/dockyard-rt-test-{os.getpid()}/nocg"
    bundle = _bundle(tmp_path, rootfs, _spec(["true"], path))

    def refuse(self, resources=None):
        self.make_dirs()
        raise OSError(28, "No space left on device")
    killed = []
    real_kill = os.kill

    def kill(pid, sig):
        killed.append((pid, sig))
        real_kill(pid, sig)
    monkeypatch.setattr(cgroups.V1Cgroup, "create", refuse)
    monkeypatch.setattr(cgroups.V2Cgroup, "create", refuse)
    monkeypatch.setattr(os, "kill", kill)
    try:
        with pytest.raises(RuntimeError_, match=f"cgroup {path}: .*No space left"):
            BuiltinRuntime().create("nocg", bundle, None)
        assert not cgroups.open_cgroup(path).exists()
        if cgroups.is_v2():
            assert len(killed) == 1 and killed[0][1] == 9
            with pytest.raises(ChildProcessError):
                os.waitpid(killed[0][0], os.WNOHANG)  # the init is gone and reaped, not a zombie
        else:
            assert killed == []  # nothing was forked
    finally:
        for d in Path("/sys/fs/cgroup").glob(f"*/dockyard-rt-test-{os.getpid()}"):
            d.rmdir()


def test_create_unready_returns_before_the_init_is_set_up_and_start_waits_for_it(tmp_path, rootfs):
    """create(ready=False) returns with the init in its cgroup but its b"R" still on the report
    pipe (the detached monitor's shim reads it); start() reads it first, and a failure of the
    init's set-up comes out of start() as create's would have."""
    need_root()
    path = f"/dockyard-rt-test-{os.getpid()}/unready"
    bundle = _bundle(tmp_path, rootfs, _spec(["sh", "-c", "echo hi; exit 3"], path))
    runtime = BuiltinRuntime()
    out_r, out_w = os.pipe()
    try:
        created = runtime.create("unready", bundle, (out_w, out_w, out_w), ready=False)
        os.close(out_w)
        assert not created.ready
        assert created.handover()[3:] == ["unready"]
        created.start()
        assert os.read(out_r, 100) == b"hi\n"
        _, status = os.waitpid(created.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 3
        runtime.delete("unready", bundle)
        spec = _spec(["true"], path)
        spec["mounts"].append({"destination": "/broken", "type": "no-such-fs", "source": "none"})
        (Path(bundle) / "config.json").write_text(json.dumps(spec))
        created = runtime.create("unready", bundle, None, ready=False)
        with pytest.raises(RuntimeError_) as e:
            created.start()
        assert "/broken" in str(e.value) and "no-such-fs" in str(e.value)
        os.waitpid(created.pid, 0)
        runtime.delete("unready", bundle)
    finally:
        os.close(out_r)
        for d in Path("/sys/fs/cgroup").glob(f"*/dockyard-rt-test-{os.getpid()}"):
            for sub in d.iterdir():
                if sub.is_dir():
                    sub.rmdir()
            d.rmdir()


def test_loopback_comes_up_beside_the_init_and_its_failure_ends_it(tmp_path, rootfs, monkeypatch):
    """A brings lo up after forking B (beside B's set-up, not before it), still before B's PID
    reaches P; if that fails, B is ended and create fails with the reason, cgroup removed."""
    need_root()
    path = f"/dockyard-rt-test-{os.getpid()}/lo"
    bundle = _bundle(tmp_path, rootfs, _spec(["true"], path))
    log = tmp_path / "order"
    real_fork, real_up = os.fork, namespaces.loopback_up
    me = os.getpid()

    def note(what):
        with open(log, "a") as f:
            f.write(what + "\n")

    def fork():
        pid = real_fork()
        if pid and os.getpid() != me:
            note("fork B")
        return pid

    def up():
        note("lo")
        real_up()
    monkeypatch.setattr(os, "fork", fork)
    monkeypatch.setattr(namespaces, "loopback_up", up)
    runtime = BuiltinRuntime()
    try:
        created = runtime.create("lo", bundle, None)
        assert log.read_text().split("\n")[:2] == ["fork B", "lo"]
        created.start()
        os.waitpid(created.pid, 0)
        runtime.delete("lo", bundle)

        def refuse():
            raise OSError(19, "no lo here")
        monkeypatch.setattr(namespaces, "loopback_up", refuse)
        with pytest.raises(RuntimeError_, match="no lo here"):
            runtime.create("lo", bundle, None)
        assert not cgroups.open_cgroup(path).exists()
    finally:
        for d in Path("/sys/fs/cgroup").glob(f"*/dockyard-rt-test-{os.getpid()}"):
            for child in d.iterdir():
                if child.is_dir():
                    child.rmdir()
            d.rmdir()

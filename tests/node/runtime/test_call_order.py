"""The order of the built-in runtime's mount and namespace calls, checked through the recording
fake of node/runtime/syscalls.py (no root, no kernel state changed)."""
from __future__ import annotations

import os

import pytest

from node.runtime import mounts, namespaces, syscalls as sc
from node.runtime.enter import JOIN_ORDER
from tests.node.runtime.fake_syscalls import RecordingSyscalls


@pytest.fixture
def fake(monkeypatch):
    return RecordingSyscalls().install(monkeypatch)


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs" / "etc").mkdir(parents=True)
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n")
    cwd = os.getcwd()
    yield tmp_path
    os.chdir(cwd)  # pivot() changes directory: the fake pivots nothing


def _spec(readonly=True) -> dict:
    return {
        "root": {"path": "rootfs", "readonly": readonly},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
            {"destination": "/etc/hosts", "type": "bind", "source": "hosts", "options": ["rbind", "ro"]},
        ],
        "linux": {"maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"],
                  "rootfsPropagation": "rprivate"},
    }


def test_mounts_private_first_then_inside_the_rootfs_then_pivot_then_masks(fake, bundle):
    mounts.setup(_spec(), str(bundle))
    rootfs = os.path.realpath(bundle / "rootfs")
    calls = fake.calls
    # nothing may propagate back to the host: the first call makes every mount private
    assert calls[0] == ("mount", None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    # the rootfs becomes a mount point (pivot_root needs one)
    assert calls[1] == ("mount", rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)
    pivot = fake.index(lambda c: c[0] == "pivot_root")
    before = [c for c in calls[2:pivot] if c[0] == "mount"]
    # every spec mount lands inside the rootfs, in the spec's order, before the pivot
    targets = [c[2] for c in before]
    assert all(t.startswith(rootfs + "/") for t in targets)
    order = [t[len(rootfs):] for t in targets]
    assert order.index("/proc") < order.index("/dev") < order.index("/etc/hosts")
    # the bind is made, then remounted read-only (a bind ignores flags on its first call)
    hosts = [c for c in before if c[2] == rootfs + "/etc/hosts"]
    assert hosts[0][4] == sc.MS_BIND | sc.MS_REC and hosts[1][4] & sc.MS_REMOUNT and hosts[1][4] & sc.MS_RDONLY
    # the old root is detached right after the pivot, with propagation cut first
    assert calls[pivot] == ("pivot_root", ".", ".")
    assert calls[pivot + 1] == ("mount", None, ".", None, sc.MS_SLAVE | sc.MS_REC)
    assert calls[pivot + 2] == ("umount2", ".", sc.MNT_DETACH)
    # masked and read-only paths, then the read-only root: after the pivot, by their own paths
    after = calls[pivot + 3:]
    assert ("mount", "/dev/null", "/proc/kcore", None, sc.MS_BIND) in after
    assert after[-1][1:3] == ("/", "/") and after[-1][4] & sc.MS_RDONLY


def test_new_namespaces_are_unshared_at_once_after_joining_by_path(fake, tmp_path):
    netns = tmp_path / "netns"
    netns.write_text("")
    created = namespaces.enter([{"type": "pid"}, {"type": "network", "path": str(netns)},
                                {"type": "mount"}, {"type": "uts"}])
    assert fake.names() == ["setns", "unshare"]
    assert fake.calls[0][2] == sc.CLONE_NEWNET
    assert fake.calls[1] == ("unshare", sc.CLONE_NEWPID | sc.CLONE_NEWNS | sc.CLONE_NEWUTS)
    assert created == sc.CLONE_NEWPID | sc.CLONE_NEWNS | sc.CLONE_NEWUTS


def test_exec_joins_the_user_namespace_last(fake, monkeypatch):
    """Until it enters the container's user namespace the helper is host root, who alone may
    join a network namespace the host's user namespace owns (node/runtime/enter.py)."""
    opened = []
    monkeypatch.setattr(os, "readlink", lambda path: path)  # every namespace differs from ours
    real_open = os.open

    def fake_open(path, flags, *args):
        opened.append((path, len(fake.calls)))
        return real_open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    monkeypatch.setattr(os, "open", fake_open)
    wanted = ["user", "mount", "pid", "network", "uts", "ipc"]
    namespaces.join_process(4242, [t for t in JOIN_ORDER if t in wanted])
    # every file is opened before the first setns: joining the mount namespace changes /proc
    assert fake.names() == ["setns"] * 6 and [joined for _, joined in opened] == [0] * 6
    flags = [c[2] for c in fake.calls]
    assert flags[-1] == sc.CLONE_NEWUSER
    assert flags.index(sc.CLONE_NEWNS) > flags.index(sc.CLONE_NEWPID)
    assert opened[-1][0] == "/proc/4242/ns/user"

"""Control groups for one container, on cgroup v1 or v2, detected at run time, rooted at a path.

`open_cgroup(path, root)` returns a V1Cgroup when `root` holds per-controller hierarchies
(root/memory, root/pids, ...) and a V2Cgroup when `root` itself is a unified hierarchy
(root/cgroup.controllers exists). `path` is the OCI `linux.cgroupsPath` ("/dockyard/<id>"), so
runc and crun, given the same bundle, create the same directories.

Resources are the OCI `linux.resources` object: memory.limit/swap, cpu.quota/period, pids.limit,
devices (v1 only: on v2 the device filter needs an eBPF program, which this runtime does not load).
"""
from __future__ import annotations

import errno
import os
import time

V1_CONTROLLERS = ("cpuset", "cpu", "cpuacct", "memory", "devices", "freezer", "pids", "blkio")
DEFAULT_ROOT = "/sys/fs/cgroup"


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _rmdir_retry(path: str) -> None:
    # A cgroup dir can stay busy for a moment after its last task exits (zombie reaping).
    for attempt in range(50):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or attempt == 49:
                raise
            time.sleep(0.01)


def is_v2(root: str = DEFAULT_ROOT) -> bool:
    return os.path.exists(os.path.join(root, "cgroup.controllers"))


def open_cgroup(path: str, root: str = DEFAULT_ROOT) -> "V1Cgroup | V2Cgroup":
    return V2Cgroup(path, root) if is_v2(root) else V1Cgroup(path, root)


def kill_and_remove(cgroup) -> None:
    """SIGKILL to every process still in `cgroup`, then remove it (raises OSError if it stays)."""
    for pid in cgroup.pids():
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    cgroup.destroy()  # what does not exist is skipped


# How long the prewarm keeps the kernel's fast path open at most, and how often it re-writes:
# the fast state lapses about one grace period (10-15 ms here) after the last write.
PREWARM_SECONDS = 0.5
PREWARM_INTERVAL = 0.003
_prewarm = {"until": 0.0}


def prewarm_attach(root: str = DEFAULT_ROOT, wait_started: bool = False) -> None:
    """Start, on a background thread, the slow part of the container's coming cgroup join, and
    keep it done until stop_prewarm() (or PREWARM_SECONDS).

    The first write to any cgroup.procs after a quiet spell makes the kernel wait for an RCU
    grace period (percpu rwsem cgroup_threadgroup_rwsem: 10-15 ms measured here, 15-70 ms under
    load); writes that follow within about one grace period are cheap. Re-writing our own PID
    into the cgroup we are already in moves nothing (same css_set) but starts that wait now,
    while the caller works, instead of later, when the container waits. One write was not
    enough: when the join came more than a grace period after it (image lookup, bundle and
    fork under load) the kernel was back in its slow state and the join paid the wait again,
    so the thread re-writes every PREWARM_INTERVAL until the join is done. Best effort: any
    failure is ignored.

    `wait_started`: return only once the thread is in its first write. Otherwise the thread
    waits for the GIL while the caller computes (imports) and the wait starts up to one switch
    interval (5 ms) late, as measured in the one-shot command (node/runtime/command.py).

    Not on v1 hierarchies: there the container's init joins through `tasks` (join_through), which
    has no slow part to start early, and the prewarm's write would only hold the kernel's cgroup
    lock through its grace period while the container's cgroup is made (mkdir waits for it).
    """
    if not is_v2(root):
        return
    path = _own_procs_file(root)
    if path:
        import _thread  # not threading: nothing here needs its bookkeeping, and it costs an import
        _prewarm["until"] = time.monotonic() + PREWARM_SECONDS
        started = None
        if wait_started:
            started = _thread.allocate_lock()
            started.acquire()
        _thread.start_new_thread(_rewrite_own_pid, (path, started))
        if started is not None:
            started.acquire()  # blocking here hands the GIL to the thread


def stop_prewarm() -> None:
    """The container's cgroup join is done: let the prewarm thread end."""
    _prewarm["until"] = 0.0


def _own_procs_file(root: str) -> str | None:
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        if controllers.startswith("name="):
            continue
        path = os.path.join(root, controllers, rel.lstrip("/"), "cgroup.procs")
        if os.path.exists(path):
            return path
    return None


def _rewrite_own_pid(path: str, started=None) -> None:
    # a raw fd, not a file object (a fork meanwhile must not inherit a held buffer lock), opened
    # for each write so that a child forked meanwhile (the container's init) rarely holds one
    pid = str(os.getpid()).encode()
    while True:
        try:
            try:
                fd = os.open(path, os.O_WRONLY)
            finally:
                if started is not None:  # the GIL goes back to the caller when os.write blocks
                    started.release()
                    started = None
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        except OSError:
            return
        if time.monotonic() >= _prewarm["until"]:
            return
        time.sleep(PREWARM_INTERVAL)


def device_rule_writes(rules: list[dict]) -> list[tuple[str, str]]:
    """(file, line) for each OCI device rule, in order, less the exact repeats that cannot change
    the result: an allow line already written since the last deny or "a" write. Such a run of
    specific allows only adds to (deny-all) or clears from (allow-all) the kernel's exception
    entry of that exact type:major:minor, with the same access bits, so writing it twice is the
    same as once; a deny, or an "a" (which resets the whole list), may undo it, so after one
    the line is written again. The runtime's own rules repeat most of Docker's list."""
    writes = []
    seen: set[str] = set()
    for rule in rules:
        kind = rule.get("type") or "a"
        major = "*" if rule.get("major") in (None, -1) else str(rule["major"])
        minor = "*" if rule.get("minor") in (None, -1) else str(rule["minor"])
        line = "a" if kind == "a" else f"{kind} {major}:{minor} {rule.get('access') or 'rwm'}"
        if not rule.get("allow") or line == "a":
            seen.clear()
        elif line in seen:
            continue
        else:
            seen.add(line)
        writes.append(("devices.allow" if rule.get("allow") else "devices.deny", line))
    return writes


def write_device_rules(d: str, rules: list[dict]) -> None:
    """The rules into cgroup v1 directory `d`, through one open file per name: the kernel
    parses each write() as one rule (and refuses a bad one on that write), so this is the
    same sequence as a file opened per rule, without two syscalls and a file object each."""
    fds: dict[str, int] = {}
    try:
        for name, line in device_rule_writes(rules):
            fd = fds.get(name)
            if fd is None:
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC  # as open(path, "w")
                fd = fds[name] = os.open(os.path.join(d, name), flags, 0o644)
            os.write(fd, line.encode())
    finally:
        for fd in fds.values():
            os.close(fd)


def join_through(fds: list[int]) -> None:
    """Move the calling process into the cgroups whose `tasks` files V1Cgroup.open_join opened:
    b"0" (this thread) to each, then close them all (even on failure: they must not outlive the
    set-up, let alone reach the container's program).

    Why not a cgroup.procs write of our PID by the parent: that one takes the kernel's
    cgroup_threadgroup_rwsem for writing, and the first such write after a quiet spell waits for
    an RCU grace period (10-15 ms measured here, 15-70 under load; the one-shot command's
    critical path). A thread that moves itself alone (`tasks`, "0") needs no threadgroup lock
    (Linux 5.19+: cgroup_procs_write_start): ~0.05 ms. Called from a single-threaded process (a
    fresh fork), moving the thread moves the process. The files were opened by the runtime
    (host root) and the kernel checks the opener's credentials, so this works from inside a new
    user namespace too."""
    try:
        for fd in fds:
            os.write(fd, b"0")
    finally:
        for fd in fds:
            os.close(fd)


class V1Cgroup:
    version = 1

    def __init__(self, path: str, root: str = DEFAULT_ROOT) -> None:
        self.rel = path.strip("/")
        self.root = root
        self.dirs = {c: os.path.join(root, c, self.rel) for c in V1_CONTROLLERS
                     if os.path.isdir(os.path.join(root, c))}

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs.values())

    def create(self, resources: dict | None = None) -> None:
        self.make_dirs()
        self.apply(resources or {})

    def make_dirs(self) -> None:
        """The directories alone (create() without limits); again later is harmless."""
        for controller, d in self.dirs.items():
            if controller == "cpuset":
                self._make_cpuset(d)
            else:
                os.makedirs(d, exist_ok=True)

    def _make_cpuset(self, d: str) -> None:
        # A new v1 cpuset group starts with no cpus and mems and refuses tasks: inherit the parent's.
        parent = os.path.dirname(d)
        if not os.path.isdir(parent):
            self._make_cpuset(parent)
        if not os.path.isdir(d):
            os.mkdir(d)
            for name in ("cpuset.cpus", "cpuset.mems"):
                _write(os.path.join(d, name), _read(os.path.join(parent, name)).strip() or "\n")

    def apply(self, resources: dict) -> None:
        memory = resources.get("memory") or {}
        if "memory" in self.dirs and memory.get("limit"):
            d = self.dirs["memory"]
            _write(os.path.join(d, "memory.limit_in_bytes"), str(memory["limit"]))
            swap = memory.get("swap")
            memsw = os.path.join(d, "memory.memsw.limit_in_bytes")
            if swap and os.path.exists(memsw):
                _write(memsw, str(swap))
        cpu = resources.get("cpu") or {}
        if "cpu" in self.dirs and cpu.get("quota"):
            d = self.dirs["cpu"]
            _write(os.path.join(d, "cpu.cfs_period_us"), str(cpu.get("period") or 100000))
            _write(os.path.join(d, "cpu.cfs_quota_us"), str(cpu["quota"]))
        if "cpu" in self.dirs and cpu.get("shares"):
            _write(os.path.join(self.dirs["cpu"], "cpu.shares"), str(cpu["shares"]))
        pids = resources.get("pids") or {}
        if "pids" in self.dirs and pids.get("limit"):
            limit = pids["limit"]
            _write(os.path.join(self.dirs["pids"], "pids.max"), "max" if limit < 0 else str(limit))
        if "devices" in self.dirs and resources.get("devices"):
            write_device_rules(self.dirs["devices"], resources["devices"])

    def add(self, pid: int) -> None:
        for d in self.dirs.values():
            _write(os.path.join(d, "cgroup.procs"), str(pid))

    def open_join(self) -> list[int]:
        """Each hierarchy's `tasks` file opened for writing (close-on-exec), for join_through in
        the process that is to move (a child forked after this call)."""
        fds: list[int] = []
        try:
            for d in self.dirs.values():
                fds.append(os.open(os.path.join(d, "tasks"), os.O_WRONLY | os.O_CLOEXEC))
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return fds

    def add_self(self) -> None:
        """Move the calling (single-threaded) process in: join_through, without the grace period."""
        join_through(self.open_join())

    def pids(self) -> list[int]:
        d = self.dirs.get("pids") or self.dirs.get("memory") or next(iter(self.dirs.values()))
        try:
            return [int(x) for x in _read(os.path.join(d, "cgroup.procs")).split()]
        except FileNotFoundError:
            return []

    def freeze(self) -> None:
        self._freezer("FROZEN")

    def thaw(self) -> None:
        self._freezer("THAWED")

    def _freezer(self, state: str) -> None:
        path = os.path.join(self.dirs["freezer"], "freezer.state")
        _write(path, state)
        for _ in range(500):  # FREEZING is transient; wait for the state to settle
            if _read(path).strip() == state:
                return
            time.sleep(0.002)
        raise OSError(f"freezer did not reach {state}")

    def frozen(self) -> bool:
        try:
            return _read(os.path.join(self.dirs["freezer"], "freezer.state")).strip() != "THAWED"
        except (KeyError, OSError):
            return False

    def oom_killed(self) -> bool:
        try:
            text = _read(os.path.join(self.dirs["memory"], "memory.oom_control"))
        except (KeyError, OSError):
            return False
        fields = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        return int(fields.get("oom_kill", "0")) > 0

    def destroy(self) -> None:
        for d in self.dirs.values():
            _rmdir_retry(d)  # a hierarchy without it: FileNotFoundError, ignored there


class V2Cgroup:
    version = 2

    def __init__(self, path: str, root: str = DEFAULT_ROOT) -> None:
        self.rel = path.strip("/")
        self.root = root
        self.dir = os.path.join(root, self.rel)

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    def create(self, resources: dict | None = None) -> None:
        self.make_dirs()
        self.apply(resources or {})

    def make_dirs(self) -> None:
        """Enable the controllers we use in every ancestor, top down, then make the leaf
        (create() without limits); again later is harmless."""
        available = set(_read(os.path.join(self.root, "cgroup.controllers")).split())
        wanted = [c for c in ("cpu", "memory", "pids") if c in available]
        current = self.root
        for part in self.rel.split("/"):
            control = os.path.join(current, "cgroup.subtree_control")
            try:  # only what is missing: a write takes the kernel's cgroup lock, a read does not
                enabled = _read(control).split()
            except OSError:
                enabled = []
            missing = [c for c in wanted if c not in enabled]
            if missing:
                try:
                    _write(control, " ".join("+" + c for c in missing))
                except OSError:
                    pass  # a controller another manager holds; limits for it will fail loudly below
            current = os.path.join(current, part)
            os.makedirs(current, exist_ok=True)

    def _limit(self, name: str, value: str) -> None:
        path = os.path.join(self.dir, name)
        if not os.path.exists(path):
            controller = name.split(".")[0]
            raise OSError(f"cannot set {name}: the {controller} controller is not available in {self.root}")
        _write(path, value)

    def apply(self, resources: dict) -> None:
        memory = resources.get("memory") or {}
        if memory.get("limit"):
            self._limit("memory.max", str(memory["limit"]))
            swap_file = os.path.join(self.dir, "memory.swap.max")
            if memory.get("swap") and os.path.exists(swap_file):
                # OCI swap is memory+swap (v1 semantics); v2 counts swap alone.
                _write(swap_file, str(max(0, memory["swap"] - memory["limit"])))
        cpu = resources.get("cpu") or {}
        if cpu.get("quota"):
            self._limit("cpu.max", f"{cpu['quota']} {cpu.get('period') or 100000}")
        if cpu.get("shares"):  # OCI runtimes' conversion of v1 shares to a v2 weight
            self._limit("cpu.weight", str(1 + ((max(2, min(cpu["shares"], 262144)) - 2) * 9999) // 262142))
        pids = resources.get("pids") or {}
        if pids.get("limit"):
            limit = pids["limit"]
            self._limit("pids.max", "max" if limit < 0 else str(limit))

    def add(self, pid: int) -> None:
        _write(os.path.join(self.dir, "cgroup.procs"), str(pid))

    def add_self(self) -> None:
        self.add(os.getpid())

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in _read(os.path.join(self.dir, "cgroup.procs")).split()]
        except FileNotFoundError:
            return []

    def freeze(self) -> None:
        self._set_frozen("1")

    def thaw(self) -> None:
        self._set_frozen("0")

    def _set_frozen(self, value: str) -> None:
        _write(os.path.join(self.dir, "cgroup.freeze"), value)
        want = "frozen 1" if value == "1" else "frozen 0"
        for _ in range(500):
            if want in _read(os.path.join(self.dir, "cgroup.events")):
                return
            time.sleep(0.002)

    def frozen(self) -> bool:
        try:
            return _read(os.path.join(self.dir, "cgroup.freeze")).strip() == "1"
        except OSError:
            return False

    def oom_killed(self) -> bool:
        try:
            text = _read(os.path.join(self.dir, "memory.events"))
        except OSError:
            return False
        fields = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        return int(fields.get("oom_kill", "0")) > 0

    def destroy(self) -> None:
        if os.path.isdir(self.dir):
            _rmdir_retry(self.dir)

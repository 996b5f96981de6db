"""The built-in runtime: runs an OCI bundle (config.json + rootfs) the way runc does, in Python.

Protocol between the caller (the engine's monitor, P), an intermediate child (A) and the
container's init (B):

  P: create the cgroup (linux.cgroupsPath, linux.resources); on v1 open its `tasks` files for
     B; become a child subreaper.
  P fork -> A: join namespaces given by path, unshare the new ones (the PID namespace applies
     to A's children only).
  A fork -> B: PID 1 in the new PID namespace. A brings lo up in a new netns (while B sets up),
     then writes B's host PID on `pid pipe` and exits;
     B is re-parented to P (the subreaper), so P reaps B's exit status directly.
  v1: B moves itself into the cgroup first thing, through the `tasks` files P opened
     (cgroups.join_through: no RCU grace period), and says b"J" if P returns before b"R"
     (create(ready=False)). v2: P moves B in (cgroup.procs)
     while B works on. Either way B runs nothing of the image before `start`.
  B: stdio/console, mounts, pivot_root, hostname, rlimits, user, capabilities, no_new_privs,
     looks up the program, then reports b"R" on the report pipe and blocks on the start pipe.
  P `start`: writes b"S"; B execs. The report pipe is close-on-exec: EOF means the program runs,
     b"E<code> <message>" means it could not (126/127 as Docker uses them).

Python here only forks; the container pays no interpreter start-up, which keeps `run` fast.
"""
from __future__ import annotations

import os

from node import reportpipe as report
from node.runtime import RuntimeError_, cgroups, init, namespaces, specfile, syscalls as sc


RUNTIME_DEVICE_RULES = [
    {"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}
    for major, minor in ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (136, -1))
]


def _read_report(fd: int, stop_at_ready: bool) -> bytes:
    data = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            return data
        data += chunk
        if stop_at_ready and data == b"R":
            return data


def _read_pid(fd: int) -> bytes:
    """B's PID as A writes it (digits, newline), b"" if A failed first. Read up to the newline,
    not to EOF: EOF comes only once A's exit has torn down its memory (0.3-1 ms measured)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 32)
        if not chunk:
            break
        data += chunk
    return data.strip()


def _raise_report(data: bytes, what: str) -> None:
    failed = report.parse_error(data)
    if failed:
        raise RuntimeError_(failed[1], failed[0])
    raise RuntimeError_(f"container init exited during {what} without a reason")


def _wait_for_maps(pid_w: int, maps_r: int) -> None:
    """A, just after unshare(CLONE_NEWUSER): ask P for the id maps, wait, then become the
    namespace's root (until the maps exist our ids are unmapped)."""
    os.write(pid_w, b"U")
    if os.read(maps_r, 1) != b"M":
        raise RuntimeError_("the runtime did not write the user namespace's id maps")
    os.close(maps_r)
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)


def _write_maps(a: int, linux: dict, pid_r: int, maps_w: int) -> None:
    """P's half (OCI linux.uidMappings/gidMappings). If A failed before unsharing, its report
    says why; leave the pipes for the caller's ordinary failure path."""
    try:
        if os.read(pid_r, 1) != b"U":
            return
        for kind, key in (("uid", "uidMappings"), ("gid", "gidMappings")):
            text = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in linux.get(key) or [])
            with open(f"/proc/{a}/{kind}_map", "w") as f:
                f.write(text)
        os.write(maps_w, b"M")
    except OSError:
        pass  # A sees EOF instead of b"M" and reports the failure
    finally:
        os.close(maps_w)


class Created:
    """A created container: init waiting for `start`. ``ready`` False: the init may still be
    setting up (create(ready=False)); its b"R" (or why it failed) is still on the report pipe."""

    def __init__(self, pid: int, report_fd: int, start_fd: int, console_master: int | None,
                 ready: bool = True) -> None:
        self.pid = pid
        self.console_master = console_master
        self.ready = ready
        self._report_fd = report_fd
        self._start_fd = start_fd

    def handover(self) -> list[str]:
        """How node/engine/shim.py starts this init after an exec: the two fds (made inheritable),
        and "unready" if the shim must read the init's b"R" first (await_ready)."""
        os.set_inheritable(self._start_fd, True)
        os.set_inheritable(self._report_fd, True)
        return ["fds", str(self._start_fd), str(self._report_fd), *([] if self.ready else ["unready"])]

    def start(self) -> None:
        if not self.ready:
            try:
                await_ready(self._report_fd)
            except BaseException:
                os.close(self._start_fd)  # the init, if alive, exits on EOF without running anything
                os.close(self._report_fd)
                raise
            self.ready = True
        try:
            os.write(self._start_fd, b"S")
        finally:
            os.close(self._start_fd)
        try:
            data = report.read_all(self._report_fd)
        finally:
            os.close(self._report_fd)
        if data:
            _raise_report(data, "start")


def await_ready(report_fd: int) -> None:
    """Read the init's b"R" (its set-up is done, it waits for b"S"); raises RuntimeError_ with
    the init's own report if it failed instead (os only: the shim calls it)."""
    data = _read_report(report_fd, stop_at_ready=True)
    if data != b"R":
        _raise_report(data, "create")


class BuiltinRuntime:
    name = "builtin"

    def __init__(self, cgroup_root: str = cgroups.DEFAULT_ROOT) -> None:
        self.cgroup_root = cgroup_root

    def create(self, container_id: str, bundle: str, stdio: tuple[int, int, int] | None,
               spec: dict | None = None, ready: bool = True) -> Created:
        """`spec`: the bundle's config.json when the caller has read it already. ``ready=False``:
        return once the init exists and is in its cgroup, without waiting for the end of its
        set-up (mounts, pivot_root, user, the program's lookup): the detached monitor execs its
        resident program meanwhile, whose interpreter start then overlaps that set-up, and which
        reads the b"R" (or the failure) before it writes b"S" (node/engine/shim.py). Nothing of
        the image runs before b"S" either way."""
        if spec is None:
            spec = specfile.load(os.path.join(bundle, "config.json"))
        linux = spec.get("linux") or {}
        ns_list = linux.get("namespaces") or []
        cgroup = resources = None
        if linux.get("cgroupsPath"):
            cgroup = cgroups.open_cgroup(linux["cgroupsPath"], self.cgroup_root)
            resources = dict(linux.get("resources") or {})
            if resources.get("devices"):
                # the nodes every runtime creates must stay usable, whatever the spec's filter says
                resources["devices"] = list(resources["devices"]) + RUNTIME_DEVICE_RULES
        join_fds = None
        if cgroup is not None and cgroup.version == 1:
            # made whole before the fork: B joins it through these files as its first step
            try:
                cgroup.create(resources)
                join_fds = cgroup.open_join()
            except OSError as e:
                self._remove_cgroup(cgroup)
                raise RuntimeError_(f"cgroup {linux['cgroupsPath']}: {e}") from None
        console_master = console_slave = None
        console_path = None
        if (spec.get("process") or {}).get("terminal"):
            console_master, console_slave = os.openpty()
            console_path = os.ttyname(console_slave)
        if linux.get("seccomp"):
            from node.runtime import seccomp
            seccomp.preload()  # after pivot_root the host's modules and libraries are out of reach
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
        pid_r, pid_w = os.pipe()
        report_r, report_w = os.pipe()
        start_r, start_w = os.pipe()
        new_userns = any(ns.get("type") == "user" and not ns.get("path") for ns in ns_list)
        maps_r, maps_w = os.pipe() if new_userns else (-1, -1)
        a = os.fork()
        if a == 0:  # A
            try:
                # B, forked from us, is the first process of the container's PID namespace: until
                # it execs, nothing in there may read or write it (see node/runtime/enter.py)
                sc.prctl(sc.PR_SET_DUMPABLE, 0)
                os.close(pid_r), os.close(report_r), os.close(start_w)
                if new_userns:
                    os.close(maps_w)
                    # inside the user namespace, raising a hard limit is refused: set them now
                    from node.runtime.process import set_rlimits
                    set_rlimits((spec.get("process") or {}).get("rlimits") or [])
                    # once we are the mapped root, the interpreter's own directories may be out
                    # of reach (a Python under /root): import all that A and B still need now
                    import fcntl, termios  # noqa: F401,E401
                    from node.runtime import init, process, mounts, capabilities  # noqa: F401,E401
                created = namespaces.enter(ns_list)
                if created & sc.CLONE_NEWUSER:
                    _wait_for_maps(pid_w, maps_r)
                b = os.fork()
                if b == 0:  # B
                    os.close(pid_w)
                    from node.runtime import init
                    init.run(spec, bundle, stdio, console_slave, console_path, report_w, start_r, join_fds,
                             announce_join=not ready)
                if created & sc.CLONE_NEWNET:
                    # here, beside B's set-up (B is in this netns too, and cannot exec before
                    # our PID reaches P, which comes after this); failed, B is ended first
                    try:
                        namespaces.loopback_up()
                    except BaseException:
                        os.kill(b, 9)
                        os.waitpid(b, 0)
                        raise
                os.write(pid_w, b"%d\n" % b)
                os._exit(0)
            except BaseException as e:  # noqa: BLE001
                report.send_error(report_w, 125, e)
                os._exit(1)
        os.close(pid_w), os.close(report_w), os.close(start_r)
        if console_slave is not None:
            os.close(console_slave)
        for fd in join_fds or ():
            os.close(fd)  # B's copies are the ones that count
        # v2: the cgroup is made here, after the fork, while A unshares and B builds its mounts:
        # its mkdirs wait for the kernel's cgroup_mutex, which a cgroup.procs write elsewhere (the
        # agent's prewarm thread, another container's join) holds through an RCU grace period
        # (measured 1-16 ms). B joins it below, limits already written, and cannot exec before
        # our "S": the container's program starts under exactly the same limits as before.
        cgroup_error = None
        if cgroup is not None and join_fds is None:
            cgroup_error = self._make_cgroup(cgroup, resources)
        if new_userns:
            os.close(maps_r)
            _write_maps(a, linux, pid_r, maps_w)
        raw_pid = _read_pid(pid_r)
        os.close(pid_r)
        if cgroup_error is not None or not raw_pid:
            os.waitpid(a, 0)  # A is gone: B, if forked, is our child (we are its subreaper)
        if cgroup_error is not None:
            if raw_pid:  # B waits for "S", never runs the program: end it before saying why
                os.kill(int(raw_pid), 9)
                os.waitpid(int(raw_pid), 0)
            self._fail_cleanup([report_r, start_w, console_master], cgroup)
            raise RuntimeError_(f"cgroup {linux['cgroupsPath']}: {cgroup_error}") from None
        if not raw_pid:
            data = report.read_all(report_r)
            self._fail_cleanup([report_r, start_w, console_master], cgroup)
            _raise_report(data, "create")
        pid = int(raw_pid)
        if cgroup is not None and join_fds is None:
            # Joining a fresh cgroup costs the kernel milliseconds (RCU sync): do it here while B
            # builds its mounts. B cannot exec before our "S", which comes after this.
            try:
                cgroup.add(pid)
            except OSError as e:
                os.waitpid(a, 0)
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                self._fail_cleanup([report_r, start_w, console_master], cgroup)
                raise RuntimeError_(f"joining cgroup {linux['cgroupsPath']}: {e}") from None
        # A exits right after writing B's PID; it is reaped only after the join (and, when we wait
        # for it, after B's set-up), so that its exit (the kernel unmapping A's copy of our
        # memory) runs beside them instead of before. Once it is reaped B is our child, as every
        # waitpid(pid) needs.
        if join_fds is not None and not ready:
            # B's b"J": it is in its cgroup (what create() promises), or why it is not. (When we
            # wait for its b"R" below, that comes after the join anyway: no J, one wake-up less.)
            try:
                data = os.read(report_r, 1)
                if data == b"J":
                    data = b""
                elif data:
                    data += report.read_all(report_r)
                else:
                    data = b"E125 container init exited before joining its cgroup"
            except BaseException:
                os.waitpid(a, 0)
                raise
            if data:
                os.waitpid(a, 0)
                self._fail_create(pid, data, [report_r, start_w, console_master], cgroup)
        if not ready:
            os.waitpid(a, 0)
            return Created(pid, report_r, start_w, console_master, ready=False)
        try:
            data = _read_report(report_r, stop_at_ready=True)
        finally:
            os.waitpid(a, 0)
        if data != b"R":
            self._fail_create(pid, data, [report_r, start_w, console_master], cgroup)
        return Created(pid, report_r, start_w, console_master)

    def _fail_create(self, pid: int, data: bytes, fds, cgroup) -> None:
        try:
            os.waitpid(pid, 0)  # B exits right after reporting; reap it
        except ChildProcessError:
            pass
        self._fail_cleanup(fds, cgroup)
        _raise_report(data, "create")

    @staticmethod
    def _make_cgroup(cgroup, resources: dict) -> OSError | None:
        try:
            cgroup.create(resources)
        except OSError as e:
            return e
        return None

    def _fail_cleanup(self, fds, cgroup) -> None:
        for fd in fds:
            if fd is not None:
                os.close(fd)
        self._remove_cgroup(cgroup)

    @staticmethod
    def _remove_cgroup(cgroup) -> None:
        if cgroup is not None:
            try:
                cgroup.destroy()
            except OSError:
                pass

    def delete(self, container_id: str, bundle: str, spec: dict | None = None) -> None:
        """After the init exited: remove the cgroup (processes left behind are killed first)."""
        if spec is None:
            try:
                spec = specfile.load(os.path.join(bundle, "config.json"))
            except FileNotFoundError:
                return
        path = (spec.get("linux") or {}).get("cgroupsPath")
        if not path:
            return
        cgroups.kill_and_remove(cgroups.open_cgroup(path, self.cgroup_root))

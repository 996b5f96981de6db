"""The bridge driver's kernel side: network namespaces, bridges, veth pairs.

Every function does one idempotent thing so that attach, detach and reclaim can call them in
any state the machine was left in (a crash between two steps included).

How the kernel is told, and why: links, addresses and routes go through iproute2's ``ip`` in
batch mode — one ``ip -batch`` for the host's side of an attach and one run inside the
container's namespace for its side — rather than through pyroute2. Measured on this project's
2-core machine, ``import pyroute2`` (0.9: asyncio, ipdb, ndb and conntrack come with any
submodule) cost 110-240 ms idle and over 500 ms loaded, on every `dockyard run` with a network,
and it opened a netlink socket (forking a helper for each one inside a namespace) per step; two
``ip`` processes cost a few milliseconds and speak the same netlink. Reading the host's state
needs no process at all: /sys/class/net tells whether a link exists. Namespaces are made with
unshare(2) in a short-lived thread (a network namespace is per thread) and bound at their path,
as ``ip netns add`` does, so nothing forks a copy of the agent.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import ipaddress
import json
import os
import select
import signal
import threading
import time
from pathlib import Path

from node.network.state import NetworkError

NETNS_DIR = Path("/run/dockyard/netns")
CLONE_NEWNET = 0x40000000
MS_BIND, MS_SHARED = 4096, 1 << 20
MNT_DETACH = 2

_libc = ctypes.CDLL("libc.so.6", use_errno=True)


class LinkError(NetworkError):
    """An ``ip`` command failed; the message carries what it said."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.errno = code


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def which(name: str, default: str) -> str:
    """shutil.which for a tool of the network path (shutil imports bz2, lzma: ~4 ms per run)."""
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(directory or ".", name)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    return default


def _ip() -> str:
    return which("ip", "/usr/sbin/ip")


class ToolResult:
    __slots__ = ("returncode", "stdout", "stderr")

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_tool(argv: list[str], input: str = "", netns: str | None = None,  # noqa: A002
             timeout: float | None = 30.0) -> ToolResult:
    """``subprocess.run(argv, input=, capture_output=True, text=True, timeout=)`` for ``ip`` and
    ``nft``, inside the namespace bound at ``netns`` if given, without subprocess.

    Why not subprocess: its import (selectors, locale...) was ~4 ms of every attach's monitor, and
    a preexec_fn (the setns) makes it fork the whole monitor and run Python in the child. Here
    the tool is started with posix_spawn (vfork-like: nothing is copied, no Python runs in the
    child) from a short-lived thread that joined the namespace: a child is created in the
    namespaces of the thread that spawns it. As subprocess does, the child gets only its three
    pipes (every other inheritable descriptor is closed in it) and SIGPIPE/SIGXFSZ at default.
    Raises FileNotFoundError if the tool is missing, TimeoutError (after killing it) on timeout
    (None: no limit)."""
    if netns:
        return _in_netns(netns, lambda: run_tool(argv, input, None, timeout))
    return start_tool(argv, input).wait(timeout)


class RunningTool:
    """A tool started by start_tool; wait() feeds the rest of its input, collects its output
    and reaps it (call it exactly once, on every path)."""

    def __init__(self, pid: int, in_w: int, out_r: int, err_r: int, rest: bytes) -> None:
        self.pid, self.in_w, self.out_r, self.err_r, self.rest = pid, in_w, out_r, err_r, rest

    def wait(self, timeout: float | None = 30.0) -> ToolResult:
        out, err = _communicate(self.pid, self.in_w, self.out_r, self.err_r, self.rest, timeout)
        _, status = os.waitpid(self.pid, 0)
        return ToolResult(os.waitstatus_to_exitcode(status), out.decode(errors="replace"),
                          err.decode(errors="replace"))


def start_tool(argv: list[str], input: str = "") -> RunningTool:  # noqa: A002
    """run_tool's first half, in this namespace: the tool runs (with as much of ``input`` as its
    pipe takes already written) while the caller does other work, then calls wait()."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    actions = [(os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
               (os.POSIX_SPAWN_DUP2, err_w, 2)]
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds() if fd > 2]
    try:
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions,
                             setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))
    except BaseException:
        for fd in (in_w, out_r, err_r):
            os.close(fd)
        raise
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    data = input.encode()
    if data:
        os.set_blocking(in_w, False)
        try:
            data = data[os.write(in_w, data):]
        except (BlockingIOError, BrokenPipeError):
            pass  # _communicate writes it (or finds the pipe broken) in wait()
    return RunningTool(pid, in_w, out_r, err_r, data)


def _communicate(pid: int, in_w: int, out_r: int, err_r: int, data: bytes, timeout: float | None):
    """Feed ``data`` to the child's stdin while reading its stdout and stderr until both end.
    Closes the three descriptors (each exactly once: another thread may reuse a number)."""
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    open_fds = {in_w, out_r, err_r}

    def done(fd: int) -> None:
        if fd in open_fds:
            open_fds.discard(fd)
            os.close(fd)
    try:
        poller = select.poll()
        for fd in chunks:
            poller.register(fd, select.POLLIN)
        if data:
            os.set_blocking(in_w, False)
            poller.register(in_w, select.POLLOUT)
        else:
            done(in_w)  # all written: EOF
        pending = memoryview(data)
        deadline = None if timeout is None else time.monotonic() + timeout
        while open_fds:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise TimeoutError(f"pid {pid} still running after {timeout:g} s (killed)")
            for fd, _events in poller.poll(None if left is None else left * 1000):
                if fd == in_w:
                    try:
                        pending = pending[os.write(in_w, pending):]
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:  # it stopped reading: its status says why
                        pending = pending[:0]
                    if not pending:
                        poller.unregister(in_w)
                        done(in_w)
                    continue
                chunk = os.read(fd, 65536)
                if chunk:
                    chunks[fd].append(chunk)
                else:
                    poller.unregister(fd)
                    done(fd)
    finally:
        for fd in list(open_fds):
            done(fd)
    return b"".join(chunks[out_r]), b"".join(chunks[err_r])


def _inheritable_fds() -> list[int]:
    fds = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        with contextlib.suppress(OSError):
            if os.get_inheritable(fd):
                fds.append(fd)
    return fds


def _in_netns(path: str, fn):
    """fn() in a thread of its own that joined the network namespace bound at ``path``. A
    namespace that cannot be joined is reported as the tool's failure (exit 126), as before."""
    result: list = []

    def body() -> None:
        try:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                result.append(ToolResult(126, "", f"cannot open the namespace {path}: {e.strerror}"))
                return
            try:
                joined = _libc.setns(fd, CLONE_NEWNET) == 0
                err = ctypes.get_errno()
            finally:
                os.close(fd)
            result.append(fn() if joined else ToolResult(126, "", f"setns {path}: {os.strerror(err)}"))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            result.append(e)
    worker = threading.Thread(target=body, name="netns-tool")
    worker.start()
    worker.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def run_ip(commands: list[str], netns: str | None = None, force: bool = False) -> None:
    """Run ``commands`` as one ``ip -batch`` (inside the namespace bound at ``netns``)."""
    argv = [_ip(), *(["-force"] if force else []), "-batch", "-"]
    try:
        proc = run_tool(argv, "\n".join(commands) + "\n", netns=netns)
    except FileNotFoundError:
        raise LinkError(errno.ENOENT, "ip (package iproute2) is needed for bridge networking") from None
    if proc.returncode != 0 and not force:
        raise LinkError(errno.EIO, f"ip: {proc.stderr.strip() or 'failed'} (in: {'; '.join(commands)})")


def ip_json(args: list[str], netns: str | None = None) -> list[dict]:
    proc = run_tool([_ip(), "-json", *args], netns=netns)
    if proc.returncode != 0:
        raise LinkError(errno.EIO, f"ip {' '.join(args)}: {proc.stderr.strip()}")
    try:
        return json.loads(proc.stdout or "[]")
    except ValueError:
        return []


# network namespaces --------------------------------------------------------------------------
def _mount_point(path: Path) -> dict | None:
    """The mountinfo entry whose mount point is exactly ``path`` (os.path.ismount cannot see a
    directory bound onto itself: same device as its parent)."""
    target = os.path.realpath(path)
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4].encode().decode("unicode_escape") == target:
                found = {"optional": fields[6:fields.index("-")]}
    return found


def _shared_dir(path: Path) -> None:
    """The namespaces' directory is a shared mount point (as iproute2 makes /run/netns), so that
    unbinding a namespace there propagates to mount namespaces created since. Bound onto itself
    once, and only if it is no mount point yet: binding again would stack mounts."""
    path.mkdir(parents=True, exist_ok=True)
    entry = _mount_point(path)
    if entry is None:
        _check(_libc.mount(str(path).encode(), str(path).encode(), None, MS_BIND, None), f"bind {path}")
        entry = {"optional": []}
    if not any(tag.startswith("shared:") for tag in entry["optional"]):
        _check(_libc.mount(None, str(path).encode(), None, MS_SHARED, None), f"share {path}")


def create_netns(path: str, loopback: bool = True) -> None:
    """A new network namespace bound at ``path``, loopback up (``loopback=False``: the caller
    brings it up in its own ``ip`` run inside, as create_endpoint does, saving a process)."""
    if is_netns(path):
        return
    _shared_dir(Path(path).parent)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a plain file left by a crash between create and bind
    with open(path, "x"):
        pass
    failure: list[BaseException] = []

    def make() -> None:  # a thread of its own: unshare(CLONE_NEWNET) changes only this thread
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            _check(_libc.mount(b"/proc/thread-self/ns/net",
                               path.encode(), None, MS_BIND, None), f"bind the namespace at {path}")
        except BaseException as e:  # noqa: BLE001 - reported by the caller's thread
            failure.append(e)
    worker = threading.Thread(target=make, name="netns")
    worker.start()
    worker.join()
    if failure:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise failure[0]
    if loopback:
        run_ip(["link set lo up"], netns=path)


def remove_netns(path: str) -> None:
    """Unbind and delete the namespace file. Its veths die with the namespace once no process
    (the container) holds it any more."""
    if is_netns(path):
        _libc.umount2(path.encode(), MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def is_netns(path: str) -> bool:
    try:
        return os.path.ismount(path) and os.stat(path).st_ino != 0 and _is_nsfs(path)
    except OSError:
        return False


def _is_nsfs(path: str) -> bool:
    # A bound namespace has the nsfs device of /proc/self/ns/net.
    return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev


def netns_inodes_in_use() -> set[int]:
    """Inodes of every network namespace some process is in (one pass over /proc)."""
    inodes: set[int] = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                inodes.add(os.stat(f"/proc/{entry.name}/ns/net").st_ino)
    return inodes


# bridges -------------------------------------------------------------------------------------
def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def _is_up(name: str) -> bool:
    try:
        return int(Path(f"/sys/class/net/{name}/flags").read_text(), 16) & 1 == 1  # IFF_UP
    except (OSError, ValueError):
        return False


def ensure_bridge(name: str, gateway: str, prefixlen: int) -> None:
    """The bridge exists, carries the gateway address and is up; forwarding is on."""
    if not (link_exists(name) and _is_up(name)):
        # -force: any of these may be done already (a crash half-way, another agent root)
        run_ip([f"link add {name} type bridge", f"addr add {gateway}/{prefixlen} dev {name}",
                f"link set {name} up"], force=True)
        if not link_exists(name):
            raise LinkError(errno.EIO, f"could not create the bridge {name}")
    _sysctl("net/ipv4/ip_forward", "1")
    # Lets connections to 127.0.0.1:HOSTPORT be DNATed out of this bridge (see firewall.py).
    _sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")


def delete_link(name: str) -> None:
    if link_exists(name):
        run_ip([f"link del {name}"], force=True)


# veth endpoints ------------------------------------------------------------------------------
def create_endpoint(
    *, netns_path: str, bridge: str, host_veth: str, ifname: str, ip: str, prefixlen: int,
    gateway: str, mac: str, default_route: bool,
) -> None:
    """veth pair: ``host_veth`` on ``bridge``; its peer made inside the namespace as ``ifname``
    with ``ip``, ``mac`` and (for the first network) loopback up and the default route via
    ``gateway``. The peer is created in the namespace directly (``peer ... netns PATH``) rather
    than made in the host's and moved: a move unregisters the device in one namespace and
    registers it in the other, an RCU wait of ~20-40 ms on this machine (bench/results/PROFILE.md
    section 10), and needs no temporary host-side name."""
    delete_link(host_veth)  # leftovers of a crashed attach
    try:
        run_ip([f"link add {host_veth} type veth peer name {ifname} address {mac} netns {netns_path}",
                f"link set {host_veth} master {bridge} up",
                # hairpin lets a container reach its own published port through the host address
                f"link set dev {host_veth} type bridge_slave hairpin on"])
    except BaseException:
        delete_link(host_veth)
        raise
    commands = ["link set lo up"] if default_route else []
    commands += [f"addr add {ip}/{prefixlen} dev {ifname}", f"link set {ifname} up"]
    if default_route:
        commands.append(f"route add default via {gateway}")
    run_ip(commands, netns=netns_path)


def container_ifnames(netns_path: str) -> set[str]:
    return {link.get("ifname") for link in ip_json(["link", "show"], netns=netns_path)}


def remove_endpoint_in_netns(netns_path: str, ifname: str) -> None:
    """For `network disconnect`: deleting one end of a veth deletes both."""
    if not is_netns(netns_path):
        return
    run_ip([f"link del {ifname}"], netns=netns_path, force=True)


# routes, for overlap checks ------------------------------------------------------------------
def host_networks(exclude_links: set[str] = frozenset()) -> list[tuple[ipaddress.IPv4Network, str]]:
    """IPv4 ranges the host already routes (routes and interface subnets), with a description;
    the default route is left out (everything overlaps it)."""
    taken: list[tuple[ipaddress.IPv4Network, str]] = []
    for route in ip_json(["-4", "route", "show", "table", "main"]):
        dst, dev = route.get("dst", ""), route.get("dev", "?")
        if not dst or dst == "default" or dev in exclude_links:
            continue
        with contextlib.suppress(ValueError):
            taken.append((ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False),
                          f"route via {dev}"))
    for link in ip_json(["-4", "addr", "show"]):
        dev = link.get("ifname", "?")
        if dev in exclude_links or dev == "lo":
            continue
        for addr in link.get("addr_info") or []:
            with contextlib.suppress(ValueError, KeyError):
                net = ipaddress.IPv4Network(f"{addr['local']}/{addr['prefixlen']}", strict=False)
                taken.append((net, f"address on {dev}"))
    return taken


def _sysctl(key: str, value: str) -> None:
    path = Path("/proc/sys") / key
    with contextlib.suppress(FileNotFoundError):
        if path.read_text().strip() != value:
            path.write_text(value)

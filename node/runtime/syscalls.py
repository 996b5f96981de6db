"""The Linux system calls the runtime needs that Python 3.11's `os` lacks, through libc (called
with node/runtime/libc.py: _ctypes without the ctypes package, a few ms of a one-shot command).

Everything the runtime does to the kernel beyond `os` goes through this one module, so the order
of calls can be observed (and faked) in tests without root. Each wrapper raises OSError with
errno and the call's arguments on failure.
"""
from __future__ import annotations

import os

from node.runtime import libc as C


def _load_libc() -> C.Library:
    # ctypes.util.find_library runs ldconfig/gcc (~10 ms); glibc's soname is stable, try it first
    try:
        return C.Library("libc.so.6")
    except OSError:
        from ctypes import util
        return C.Library(util.find_library("c"))


_libc = _load_libc()

# namespace flags (linux/sched.h)
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NAMESPACE_FLAGS = {
    "mount": CLONE_NEWNS, "pid": CLONE_NEWPID, "uts": CLONE_NEWUTS, "ipc": CLONE_NEWIPC,
    "network": CLONE_NEWNET, "user": CLONE_NEWUSER, "cgroup": CLONE_NEWCGROUP,
}
# the name of each namespace under /proc/PID/ns/
NAMESPACE_PROC_NAMES = {
    "mount": "mnt", "pid": "pid", "uts": "uts", "ipc": "ipc", "network": "net", "user": "user",
    "cgroup": "cgroup",
}

# mount flags (linux/mount.h)
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

MNT_FORCE = 1
MNT_DETACH = 2

# prctl options (linux/prctl.h)
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_SYS_pivot_root = 155  # x86_64
_SYS_capget = 125
_SYS_capset = 126
_SYS_setns = 308
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_mount = _libc.function("mount", [C.c_char_p, C.c_char_p, C.c_char_p, C.c_ulong, C.c_char_p])
_umount2 = _libc.function("umount2", [C.c_char_p, C.c_int])
_unshare = _libc.function("unshare", [C.c_int])
_setns = _libc.function("setns", [C.c_int, C.c_int])
_sethostname = _libc.function("sethostname", [C.c_char_p, C.c_size_t])
_prctl = _libc.function("prctl", [C.c_int, C.c_ulong, C.c_ulong, C.c_ulong, C.c_ulong])
_syscall = _libc.function("syscall", None, C.c_long)  # variadic: ints, bytes and byref() as given
_socket = _libc.function("socket", [C.c_int, C.c_int, C.c_int])
_memset = _libc.function("memset", [C.c_void_p, C.c_int, C.c_size_t], C.c_void_p)
_setrlimit = _libc.function("setrlimit", [C.c_int, C.c_void_p])
_ioctl = _libc.function("ioctl", [C.c_int, C.c_ulong, C.c_void_p])

AF_INET = 2
SOCK_DGRAM = 2
SOCK_CLOEXEC = 0o2000000


def _check(result: int, what: str) -> int:
    if result < 0:
        err = C.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _b(value: str | bytes | None) -> bytes | None:
    if value is None:
        return None
    return value.encode() if isinstance(value, str) else value


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    _check(_mount(_b(source), _b(target), _b(fstype), flags, _b(data)),
           f"mount {source or 'none'} on {target} ({fstype or '-'}, flags={flags:#x}, {data or ''})")


def umount2(target: str, flags: int = 0) -> None:
    _check(_umount2(_b(target), flags), f"umount {target}")


def unshare(flags: int) -> None:
    _check(_unshare(flags), f"unshare({flags:#x})")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_setns(fd, nstype), f"setns({fd}, {nstype:#x})")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_syscall(_SYS_pivot_root, _b(new_root), _b(put_old)), f"pivot_root({new_root}, {put_old})")


def inet_dgram_socket() -> int:
    """A raw fd of an AF_INET datagram socket (close it with os.close): what interface ioctls
    need. Through libc, not the socket module: loading `_socket` (an extension module) costs a
    one-shot runtime command ~1.3 ms on the container's critical path."""
    return _check(_socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), "socket(AF_INET, SOCK_DGRAM)")


SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914


class _Ifreq(C.Structure):  # struct ifreq with its ifr_flags member (linux/if.h): 40 bytes
    _fields_ = [("name", C.c_char * 16), ("flags", C.c_short), ("_rest", C.c_char * 22)]


def interface_flags(fd: int, name: str) -> int:
    """SIOCGIFFLAGS: the flags of network interface `name`, through socket `fd`. Here rather
    than fcntl.ioctl + struct: two fewer modules to import for the loopback of a new netns."""
    request = _Ifreq(name.encode())
    _check(_ioctl(fd, SIOCGIFFLAGS, C.addressof(request)), f"SIOCGIFFLAGS {name}")
    return request.flags & 0xFFFF


def set_interface_flags(fd: int, name: str, flags: int) -> None:
    request = _Ifreq(name.encode(), flags if flags < 0x8000 else flags - 0x10000)  # a C short
    _check(_ioctl(fd, SIOCSIFFLAGS, C.addressof(request)), f"SIOCSIFFLAGS {name} {flags:#x}")


def wipe(address: int, size: int) -> None:
    """Zero `size` bytes of our own memory at `address` (the host's environment strings)."""
    _memset(address, 0, size)


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_sethostname(raw, len(raw)), f"sethostname({name!r})")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_prctl(option, arg2, arg3, arg4, arg5), f"prctl({option}, {arg2})")


# resource limits (asm-generic/resource.h: x86, arm, riscv, powerpc; not mips, sparc or alpha),
# so that the container's init needs no `resource` module (an extension module to load after
# the fork, on the critical path of a one-shot command)
RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15, "RLIMIT_OFILE": 7,  # the BSD name `resource` also took
}
RLIM_INFINITY = (1 << 64) - 1  # (rlim_t) -1


class _Rlimit(C.Structure):
    _fields_ = [("rlim_cur", C.c_uint64), ("rlim_max", C.c_uint64)]


def setrlimit(resource: int, soft: int, hard: int) -> None:
    """setrlimit(2); values are rlim_t (unsigned), RLIM_INFINITY for unlimited."""
    limit = _Rlimit(soft, hard)
    _check(_setrlimit(resource, C.addressof(limit)), f"setrlimit({resource}, {soft}, {hard})")


class _CapHeader(C.Structure):
    _fields_ = [("version", C.c_uint32), ("pid", C.c_int)]


class _CapData(C.Structure):
    _fields_ = [("effective", C.c_uint32), ("permitted", C.c_uint32),
                ("inheritable", C.c_uint32)]


def capget(pid: int = 0) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) as 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (_CapData * 2)()
    _check(_syscall(_SYS_capget, C.byref(header), C.byref(data)), "capget")
    join = lambda lo, hi: lo | (hi << 32)  # noqa: E731
    return (join(data[0].effective, data[1].effective), join(data[0].permitted, data[1].permitted),
            join(data[0].inheritable, data[1].inheritable))


def capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i, shift in enumerate((0, 32)):
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_syscall(_SYS_capset, C.byref(header), C.byref(data)), "capset")


# the new mount API (x86_64 numbers; linux/mount.h), for idmapped layer mounts (--userns=private)
_SYS_open_tree = 428
_SYS_move_mount = 429
_SYS_mount_setattr = 442
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
MOVE_MOUNT_F_EMPTY_PATH = 4
MOUNT_ATTR_IDMAP = 0x00100000


class _MountAttr(C.Structure):
    _fields_ = [("attr_set", C.c_uint64), ("attr_clr", C.c_uint64),
                ("propagation", C.c_uint64), ("userns_fd", C.c_uint64)]


def idmapped_bind(source: str, target: str, userns_fd: int) -> None:
    """Bind `source` (recursively) onto `target` with ownership shifted through the id maps of the
    user namespace `userns_fd`: open_tree(CLONE) -> mount_setattr(IDMAP) -> move_mount."""
    tree = _check(_syscall(_SYS_open_tree, AT_FDCWD, _b(source),
                                OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE), f"open_tree {source}")
    try:
        attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
        _check(_syscall(_SYS_mount_setattr, tree, b"", AT_EMPTY_PATH | AT_RECURSIVE,
                             C.byref(attr), C.sizeof(attr)), f"mount_setattr(IDMAP) {source}")
        _check(_syscall(_SYS_move_mount, tree, b"", AT_FDCWD, _b(target), MOVE_MOUNT_F_EMPTY_PATH),
               f"move_mount {source} -> {target}")
    finally:
        os.close(tree)

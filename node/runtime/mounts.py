"""The container's filesystem view, built inside its new mount namespace (OCI `mounts`, `root`,
`linux.maskedPaths`, `linux.readonlyPaths`, `linux.rootfsPropagation`).

Order (each step needs the previous one): make every mount private so nothing propagates back
to the host -> bind the rootfs onto itself (pivot_root needs a mount point) -> each spec mount,
its target resolved *inside* the rootfs -> device nodes on /dev (the defaults, then linux.devices)
-> the console -> pivot_root and
detach the old root -> masked and read-only paths -> read-only root.
"""
from __future__ import annotations

import errno
import os
import stat

from node.runtime import syscalls as sc

# option word -> (flag to set, flag to clear)
_FLAG_OPTIONS = {
    "ro": (sc.MS_RDONLY, 0), "rw": (0, sc.MS_RDONLY), "nosuid": (sc.MS_NOSUID, 0),
    "suid": (0, sc.MS_NOSUID), "nodev": (sc.MS_NODEV, 0), "dev": (0, sc.MS_NODEV),
    "noexec": (sc.MS_NOEXEC, 0), "exec": (0, sc.MS_NOEXEC), "sync": (sc.MS_SYNCHRONOUS, 0),
    "async": (0, sc.MS_SYNCHRONOUS), "noatime": (sc.MS_NOATIME, 0), "atime": (0, sc.MS_NOATIME),
    "nodiratime": (sc.MS_NODIRATIME, 0), "relatime": (sc.MS_RELATIME, 0),
    "strictatime": (sc.MS_STRICTATIME, 0), "dirsync": (sc.MS_DIRSYNC, 0),
    "bind": (sc.MS_BIND, 0), "rbind": (sc.MS_BIND | sc.MS_REC, 0), "defaults": (0, 0),
}
_PROPAGATION = {
    "private": sc.MS_PRIVATE, "rprivate": sc.MS_PRIVATE | sc.MS_REC, "slave": sc.MS_SLAVE,
    "rslave": sc.MS_SLAVE | sc.MS_REC, "shared": sc.MS_SHARED, "rshared": sc.MS_SHARED | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE, "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}
# per-mount flags a bind remount must carry over, or it would silently clear them
_KEEP_ON_REMOUNT = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_NOATIME | sc.MS_NODIRATIME | sc.MS_RELATIME

DEFAULT_DEVICES = [  # (name, major, minor): the nodes the OCI spec says a runtime must supply
    ("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0),
]
DEFAULT_LINKS = [
    ("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"), ("pts/ptmx", "ptmx"), ("/proc/kcore", "core"),
]


def parse_options(options: list[str]) -> tuple[int, int, str]:
    """(mount flags, propagation flags, data string) from an OCI mount's options."""
    flags = propagation = 0
    data = []
    for opt in options or []:
        if opt in _FLAG_OPTIONS:
            set_, clear = _FLAG_OPTIONS[opt]
            flags = (flags | set_) & ~clear
        elif opt in _PROPAGATION:
            propagation |= _PROPAGATION[opt]
        else:
            data.append(opt)
    return flags, propagation, ",".join(data)


def secure_join(root: str, path: str) -> str:
    """`path` resolved under `root` as if `root` were "/": symlinks (even absolute ones and `..`)
    can never lead outside it. Missing components are simply appended."""
    parts = [p for p in path.split("/") if p]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > 255:
                raise OSError(errno.ELOOP, f"too many symlinks resolving {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _make_target(dest: str, as_file: bool) -> None:
    if as_file:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if not os.path.lexists(dest):
            os.close(os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    else:
        os.makedirs(dest, exist_ok=True)


def mount_entry(rootfs: str, entry: dict, bundle: str) -> None:
    kind = entry.get("type") or ""
    options = entry.get("options") or []
    flags, propagation, data = parse_options(options)
    dest = secure_join(rootfs, entry["destination"])
    source = entry.get("source") or kind
    if kind == "bind" or flags & sc.MS_BIND:
        if not source.startswith("/"):
            source = os.path.join(bundle, source)
        _make_target(dest, as_file=not os.path.isdir(source))
        sc.mount(source, dest, None, sc.MS_BIND | (flags & sc.MS_REC))
        extra = flags & ~(sc.MS_BIND | sc.MS_REC)
        if extra:
            sc.mount(source, dest, None, extra | sc.MS_BIND | sc.MS_REMOUNT)
    elif kind == "cgroup":
        return  # a cgroup view needs per-controller mounts; not provided by this runtime
    else:
        _make_target(dest, as_file=False)
        try:
            sc.mount(source, dest, kind, flags, data or None)
        except PermissionError:
            if kind != "sysfs":
                raise
            # in a user namespace that does not own the network namespace (joined by path)
            # sysfs cannot be mounted: bind the host's, as runc does
            sc.mount("/sys", dest, None, sc.MS_BIND | sc.MS_REC)
            sc.mount("/sys", dest, None, sc.MS_BIND | sc.MS_REMOUNT | (flags & ~sc.MS_REC)
                     | (os.statvfs(dest).f_flag & _KEEP_ON_REMOUNT))
        if kind == "tmpfs" and entry["destination"].rstrip("/") == "/dev":
            make_devices(dest)
    if propagation:
        sc.mount(None, dest, None, propagation)


def make_devices(dev: str) -> None:
    old_umask = os.umask(0)
    try:
        for name, major, minor in DEFAULT_DEVICES:
            path = os.path.join(dev, name)
            if not os.path.exists(path):
                try:
                    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
                except PermissionError:  # in a user namespace: bind the host's node instead
                    _make_target(path, as_file=True)
                    sc.mount(f"/dev/{name}", path, None, sc.MS_BIND)
        for target, name in DEFAULT_LINKS:
            path = os.path.join(dev, name)
            if not os.path.lexists(path):
                os.symlink(target, path)
    finally:
        os.umask(old_umask)


def make_spec_devices(rootfs: str, devices: list[dict]) -> None:
    """linux.devices (docker's --device): each node made inside the rootfs with the host node's
    type and numbers; the cgroup's allow rules decide whether it may be opened."""
    old_umask = os.umask(0)
    try:
        for dev in devices:
            path = secure_join(rootfs, dev["path"])
            kind = stat.S_IFBLK if dev.get("type") == "b" else stat.S_IFCHR
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if os.path.lexists(path):
                os.unlink(path)
            try:
                os.mknod(path, kind | (dev.get("fileMode") or 0o666) & 0o7777, os.makedev(dev["major"], dev["minor"]))
                os.chown(path, dev.get("uid") or 0, dev.get("gid") or 0)
            except PermissionError:
                _bind_host_node(dev, path)
    finally:
        os.umask(old_umask)


def _bind_host_node(dev: dict, path: str) -> None:
    """In a user namespace mknod is refused: bind the host's node of the same path, as runc
    does (the host's root is still reachable here, before pivot_root)."""
    try:
        st = os.stat(dev["path"])
        same = (stat.S_ISBLK(st.st_mode) if dev.get("type") == "b" else stat.S_ISCHR(st.st_mode)) \
            and os.major(st.st_rdev) == dev["major"] and os.minor(st.st_rdev) == dev["minor"]
    except OSError:
        same = False
    if not same:
        raise OSError(errno.EPERM, f"device {dev['path']}: in a user namespace a device keeps its host path")
    _make_target(path, as_file=True)
    sc.mount(dev["path"], path, None, sc.MS_BIND)


def bind_console(rootfs: str, console: str) -> None:
    dest = secure_join(rootfs, "/dev/console")
    _make_target(dest, as_file=True)
    sc.mount(console, dest, None, sc.MS_BIND)


def pivot(rootfs: str) -> None:
    """pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves the new
    root alone (no directory for the old root needed inside the image)."""
    os.chdir(rootfs)
    sc.pivot_root(".", ".")
    sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)  # unmounting must not propagate to the host
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")


def mask_paths(paths: list[str]) -> None:
    for path in paths or []:
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY)
            else:
                sc.mount("/dev/null", path, None, sc.MS_BIND)
        except FileNotFoundError:
            continue
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise


def readonly_remount(path: str, recursive: bool = True) -> None:
    keep = os.statvfs(path).f_flag & _KEEP_ON_REMOUNT
    sc.mount(path, path, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | keep)


def readonly_paths(paths: list[str]) -> None:
    for path in paths or []:
        if not os.path.exists(path):
            continue
        sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
        readonly_remount(path)


def setup(spec: dict, bundle: str, console: str | None = None) -> None:
    """Run in the container's mount namespace, before exec; leaves the process in the new root."""
    linux = spec.get("linux") or {}
    propagation = _PROPAGATION.get(linux.get("rootfsPropagation") or "rprivate", sc.MS_PRIVATE | sc.MS_REC)
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    root = spec.get("root") or {}
    rootfs = os.path.join(bundle, root.get("path") or "rootfs")
    rootfs = os.path.realpath(rootfs)
    sc.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)
    for entry in spec.get("mounts") or []:
        mount_entry(rootfs, entry, bundle)
    make_spec_devices(rootfs, linux.get("devices") or [])
    if console:
        bind_console(rootfs, console)
    pivot(rootfs)
    if propagation & ~sc.MS_REC != sc.MS_PRIVATE:
        sc.mount(None, "/", None, propagation)
    write_sysctls(linux.get("sysctl") or {})
    mask_paths(linux.get("maskedPaths") or [])
    readonly_paths(linux.get("readonlyPaths") or [])
    if root.get("readonly"):
        readonly_remount("/")


def write_sysctls(sysctls: dict) -> None:
    """linux.sysctl: written through the container's own /proc (its ipc and net namespaces),
    before /proc/sys is made read-only."""
    for key, value in sysctls.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(str(value))
        except OSError as e:
            raise OSError(e.errno, f"sysctl {key}={value}: {e.strerror}") from None

"""The OCI runtime bundle for a container: bundle/config.json (runtime spec 1.0.2) next to the
rootfs mount point. The same file drives the built-in runtime, runc and crun.

Defaults follow what Docker hands runc: mount/pid/uts/ipc(/net) namespaces, /proc, a tmpfs /dev
with pts, shm and mqueue, read-only /sys, Docker's masked and read-only paths, its default
capabilities and device allow-list; no_new_privs on (stricter than Docker, as the brief asks).
"""
from __future__ import annotations

import os

from node.atomic import write_json
from node.engine import runtimes


DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]
MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
# Syscalls Docker's default seccomp profile refuses to a container without extra capabilities
# (kernel keyring, modules, mounts, namespaces, clock, tracing, swap, reboot, bpf, perf, and since
# Docker 25 io_uring). This denylist (default allow) is a simplification of Docker's allowlist.
SECCOMP_DENIED = [
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module",
    "finit_module", "fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms", "get_mempolicy",
    "init_module", "io_uring_enter", "io_uring_register", "io_uring_setup",
    "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl",
    "lookup_dcookie", "mbind", "mount", "mount_setattr", "move_mount", "move_pages",
    "name_to_handle_at", "nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open",
    "pivot_root", "process_vm_readv", "process_vm_writev", "ptrace", "query_module", "quotactl",
    "reboot", "request_key", "set_mempolicy", "setns", "settimeofday", "stime", "swapoff", "swapon",
    "syslog", "sysfs", "_sysctl", "umount", "umount2", "unshare", "uselib", "userfaultfd", "ustat",
    "vm86", "vm86old",
]
_SECCOMP_ARCHES = {"x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                   "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]}


# clone's namespace flags (NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET: Docker's
# mask 0x7E020000). A new user namespace gives back every capability inside it (network admin,
# netfilter: the nftables exploits' way in), so clone with any of them is refused (EPERM) as
# Docker refuses it; one rule per flag, since a denylist cannot say "masked != 0".
CLONE_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
ENOSYS = 38


def default_seccomp() -> dict:
    clone_rules = [{"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                    "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}]}
                   for flag in CLONE_NAMESPACE_FLAGS]
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": _SECCOMP_ARCHES.get(os.uname().machine, []),
            "syscalls": [{"names": SECCOMP_DENIED, "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                         # clone3's flags sit in memory a filter cannot read: Docker answers
                         # ENOSYS, and libcs fall back to clone, which the rules above judge
                         {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
                         *clone_rules]}


DEVICE_RULES = [{"allow": False, "access": "rwm"}] + [
    {"allow": True, "type": t, "major": ma, "minor": mi, "access": acc} for t, ma, mi, acc in (
        ("c", None, None, "m"), ("b", None, None, "m"), ("c", 1, 3, "rwm"), ("c", 1, 8, "rwm"),
        ("c", 1, 7, "rwm"), ("c", 5, 0, "rwm"), ("c", 1, 5, "rwm"), ("c", 1, 9, "rwm"),
        ("c", 5, 1, "rwm"), ("c", 136, None, "rwm"), ("c", 5, 2, "rwm"), ("c", 10, 200, "rwm"))
]


def _default_mounts(read_only_root: bool, shm_size: int = 67108864) -> list[dict]:
    sys_opts = ["nosuid", "noexec", "nodev", "ro"]
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"]},
    ]


def _user_mounts(container) -> list[dict]:
    result = []
    for m in sorted(container.spec.mounts, key=lambda m: m["Destination"].rstrip("/").count("/")):
        if m["Type"] == "tmpfs":
            user_opts = [o for o in (m.get("Mode") or "").split(",") if o]
            # Docker's --tmpfs is world-writable unless told otherwise; runc would otherwise copy
            # the mode of the directory underneath
            mode = [] if any(o.startswith("mode=") for o in user_opts) else ["mode=1777"]
            opts = ["nosuid", "nodev", "noexec"] + mode + user_opts
            result.append({"destination": m["Destination"], "type": "tmpfs", "source": "tmpfs", "options": opts})
        elif m["Type"] == "volume" and _volume_options(m):
            result.append(_local_driver_mount(m, _volume_options(m)))
        else:
            propagation = (m.get("Propagation") or "rprivate") if m["Type"] == "bind" else "rprivate"
            opts = ["rbind", propagation] + (["ro"] if not m.get("RW", True) else [])
            result.append({"destination": m["Destination"], "type": "bind", "source": m["Source"], "options": opts})
    return result


def _volume_options(m: dict) -> dict:
    """A named volume's local-driver options (--mount volume-opt=, `volume create -o`)."""
    import json
    from pathlib import Path
    try:
        with open(Path(m["Source"]).parent / "volume.json") as f:
            return dict(json.load(f).get("Options") or {})
    except (OSError, ValueError):
        return {}


def _local_driver_mount(m: dict, options: dict) -> dict:
    """Docker's local driver: mount DEVICE of TYPE with the o= options (o=bind: a bind of DEVICE).
    Mounted for this container, not once on the volume's _data: nothing is left on the host."""
    words = [w for w in (options.get("o") or "").split(",") if w]
    ro = [] if m.get("RW", True) else ["ro"]
    if "bind" in words or "rbind" in words or not options.get("type"):
        return {"destination": m["Destination"], "type": "bind", "source": options.get("device") or m["Source"],
                "options": ["rbind", "rprivate"] + [w for w in words if w not in ("bind", "rbind")] + ro}
    return {"destination": m["Destination"], "type": options["type"], "source": options.get("device") or "none",
            "options": ["nosuid", "nodev"] + words + ro}


INIT_PATH = "/sbin/docker-init"  # where docker puts its init, and where we put ours
INIT_CANDIDATES = ("/usr/bin/tini-static", "/usr/bin/docker-init", "/usr/libexec/docker/docker-init")


def init_binary() -> str:
    """The host's static tini (Debian's tini package): it runs in any image, busybox's too."""
    for path in INIT_CANDIDATES:
        if os.access(path, os.X_OK):
            return os.path.realpath(path)
    from node.engine import EngineError
    raise EngineError("--init: no init binary on this node (install the tini package: /usr/bin/tini-static)", 125)


def _devices(hc) -> tuple[list[dict], list[dict]]:
    """--device: the nodes to make in the container's /dev (linux.devices) and their cgroup rules."""
    if not hc.devices:
        return [], []  # mountopts (with csv) is imported only for --device: ~1.5-7 ms per run
    from node.engine.mountopts import device_nodes, device_rules
    nodes, rules = [], []
    for entry in hc.devices:
        found = device_nodes(entry)
        nodes += found
        rules += device_rules(entry, found)
    return nodes, rules


def build_spec(container, user: dict, network, env: list[str]) -> dict:
    spec = container.spec
    config, hc = spec.config, spec.host_config
    bind_opts = ["rbind", "rprivate"]
    mounts = _default_mounts(hc.readonly_rootfs, hc.shm_size or 67108864)
    for name in ("resolv.conf", "hostname", "hosts"):
        mounts.append({"destination": f"/etc/{name}", "type": "bind",
                       "source": str(container.dir / name), "options": list(bind_opts)})
    mounts += _user_mounts(container)
    args = [spec.path] + list(spec.args)
    if hc.init:  # docker's --init: tini as PID 1, the command its child
        mounts.append({"destination": INIT_PATH, "type": "bind", "source": init_binary(),
                       "options": ["bind", "ro", "nosuid", "nodev"]})
        args = [INIT_PATH, "--"] + args
    devices, device_rules = _devices(hc)
    caps = _capabilities(hc)
    is_root = user["uid"] == 0
    namespaces = [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]
    ns_net = network.namespace_entry()
    if ns_net:
        namespaces.append(ns_net)
    id_maps = spec.id_mappings
    if id_maps:  # --userns=private (node/engine/userns.py)
        namespaces.insert(0, {"type": "user"})
        if not ns_net or ns_net.get("path"):
            # sysfs may only be mounted from a user namespace that owns the network namespace;
            # here that one is the host's (bridge, host): bind the host's /sys, as Docker does
            for m in mounts:
                if m["type"] == "sysfs":
                    m.update(type="bind", source="/sys", options=["rbind", "nosuid", "noexec", "nodev", "ro"])
    # --privileged, as docker: every device, /sys writable, nothing masked, no seccomp
    resources: dict = {"devices": [{"allow": True, "access": "rwm"}] if hc.privileged else DEVICE_RULES + device_rules}
    if hc.privileged:
        for m in mounts:
            if m["type"] == "sysfs":
                m["options"] = [o for o in m["options"] if o != "ro"]
    if hc.memory:
        resources["memory"] = {"limit": hc.memory, "swap": hc.memory_swap or hc.memory}
    if hc.cpu_quota:
        resources["cpu"] = {"quota": hc.cpu_quota, "period": hc.cpu_period or 100000}
    if hc.pids_limit:
        resources["pids"] = {"limit": hc.pids_limit}
    if hc.cpu_shares:  # set by `update` (node/engine/update.py)
        resources.setdefault("cpu", {})["shares"] = hc.cpu_shares
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": config.tty,
            "user": {"uid": user["uid"], "gid": user["gid"], "additionalGids": _groups(container, user)},
            "args": args,
            "env": env,
            "cwd": config.working_dir or "/",
            "capabilities": {
                "bounding": caps, "effective": caps if is_root else [], "permitted": caps if is_root else [],
                "inheritable": [], "ambient": [],
            },
            "rlimits": _rlimits(hc.ulimits),
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": hc.readonly_rootfs},
        "hostname": config.hostname,
        "mounts": mounts,
        "linux": {
            "cgroupsPath": runtimes.cgroups_path(container.id),
            "resources": resources,
            "namespaces": namespaces,
            "maskedPaths": [] if hc.privileged else MASKED_PATHS,
            "readonlyPaths": [] if hc.privileged else READONLY_PATHS,
            "rootfsPropagation": "rprivate",
            **({"devices": devices} if devices else {}),
            **({"sysctl": dict(hc.sysctls)} if hc.sysctls else {}),
            **({"uidMappings": id_maps["uid"], "gidMappings": id_maps["gid"]} if id_maps else {}),
            **({} if hc.privileged or "seccomp=unconfined" in hc.security_opt else {"seccomp": default_seccomp()}),
        },
    }


def _capabilities(hc) -> list[str]:
    if not (hc.cap_add or hc.cap_drop or hc.privileged):
        return list(DEFAULT_CAPS)
    from node.engine.options import effective_caps
    return effective_caps(DEFAULT_CAPS, hc.cap_add, hc.cap_drop, hc.privileged)


def _groups(container, user: dict) -> list[int]:
    gids = list(user.get("additionalGids") or [])
    if container.spec.host_config.group_add:
        from node.engine.users import group_ids
        gids += [g for g in group_ids(str(container.rootfs), container.spec.host_config.group_add) if g not in gids]
    return gids


_UNLIMITED = (1 << 64) - 1  # RLIM_INFINITY as the OCI spec's uint64


def _rlimits(ulimits: list[dict]) -> list[dict]:
    """Docker's open-files default, then each --ulimit (which may replace it)."""
    limits = {"RLIMIT_NOFILE": (_nofile(), _nofile())}
    for u in ulimits:
        limits["RLIMIT_" + u["Name"].upper()] = tuple(_UNLIMITED if v == -1 else v for v in (u["Soft"], u["Hard"]))
    return [{"type": kind, "hard": hard, "soft": soft} for kind, (soft, hard) in limits.items()]


def _nofile() -> int:
    """Docker's 1048576 open files, unless the kernel's nr_open is lower or we may not raise our
    own hard limit (no CAP_SYS_RESOURCE, as in some sandboxes)."""
    import resource
    try:
        with open("/proc/sys/fs/nr_open") as f:
            limit = min(1048576, int(f.read()))
    except (OSError, ValueError):
        limit = 1048576
    if not runtimes.effective_capabilities() & (1 << 24):  # CAP_SYS_RESOURCE
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
    return limit


def write_bundle(container, spec: dict) -> None:
    # compact: with indent json encodes in Python (0.6 ms for a spec here), without in C (0.1)
    write_json(container.bundle / "config.json", spec, indent=None)


cgroups_path = runtimes.cgroups_path  # the container's cgroup (linux.cgroupsPath), by id

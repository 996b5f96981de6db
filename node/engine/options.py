"""What `run`/`create` were asked for, parsed and validated, independent of argparse."""
from __future__ import annotations

import re

from node.engine import EngineError

# Patterns as text, compiled (and cached by re) at their first use: a plain `run` uses none of
# them, and compiling the three at import was ~0.4 ms of every `dockyard run`.
_SIZE = r"(?i)^(\d+(?:\.\d+)?)\s*([bkmgt]?)b?$"
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_NAME = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")


class RunOptions:
    """Plain attributes with docker's defaults (not a dataclass: importing dataclasses costs
    `run` ~9 ms of start-up)."""

    image: str
    command: list[str]
    name: str | None = None
    detach = remove = interactive = tty = False
    env_files: list[str]
    workdir: str | None = None
    entrypoint: str | None = None
    user: str | None = None
    hostname: str | None = None
    read_only = False
    memory: str | None = None
    cpus: str | None = None
    pids_limit: int | None = None
    restart = "no"
    init = False
    network: str | None = None
    publish_all = False
    ip: str | None = None
    runtime = "builtin"
    userns: str | None = None
    privileged = False
    stop_signal: str | None = None
    stop_timeout: int | None = None
    shm_size: str | None = None
    health_cmd: str | None = None
    health_interval: str | None = None
    health_timeout: str | None = None
    health_retries: int | None = None
    health_start_period: str | None = None
    health_start_interval: str | None = None
    no_healthcheck = False
    healthcheck: dict | None = None  # docker's Config.Healthcheck as the engine API sends it
    _LISTS = ("command", "env", "env_files", "volumes", "tmpfs", "publish", "network_aliases", "security_opt",
              "labels", "label_files", "add_hosts", "dns", "dns_search", "cap_add", "cap_drop",
              "ulimits", "group_add", "sysctls", "mounts", "devices", "dns_options")

    def __init__(self, image: str, **options) -> None:
        self.image = image
        for name in self._LISTS:
            setattr(self, name, list(options.pop(name, None) or []))
        for name, value in options.items():
            if not hasattr(type(self), name):
                raise TypeError(f"unknown run option {name!r}")
            setattr(self, name, value)


def parse_labels(label_files: list[str], labels: list[str]) -> dict[str, str]:
    """--label-file lines, then --label values (later wins), as docker reads them: KEY=VALUE or
    KEY alone (an empty value); blank lines and # comments in files are skipped."""
    out: dict[str, str] = {}
    lines: list[str] = []
    for path in label_files:
        try:
            with open(path, encoding="utf-8") as f:
                lines += [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]
        except OSError as e:
            raise EngineError(f"cannot read label file {path}: {e.strerror}", 125) from None
    for item in [*lines, *labels]:
        key, _, value = item.partition("=")
        if not key.strip():
            raise EngineError(f"invalid label {item!r}: empty key", 125)
        out[key.strip()] = value
    return out


def parse_size(text: str) -> int:
    m = re.match(_SIZE, text.strip())
    if not m:
        raise EngineError(f"invalid size: {text!r}", 125)
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_cpus(text: str) -> tuple[int, int]:
    """--cpus as (cfs quota, period) in microseconds, like docker's NanoCPUs."""
    try:
        value = float(text)
    except ValueError:
        raise EngineError(f"invalid --cpus: {text!r}", 125) from None
    if value <= 0 or value > 1024:
        raise EngineError(f"invalid --cpus: {text!r} (range is (0, 1024])", 125)
    period = 100000
    return int(value * period), period


def parse_restart(text: str) -> tuple[str, int]:
    name, _, count = text.partition(":")
    if name not in RESTART_POLICIES:
        raise EngineError(f"invalid restart policy {text!r}", 125)
    if count and name != "on-failure":
        raise EngineError(f"maximum retry count cannot be used with restart policy {name!r}", 125)
    try:
        retries = int(count) if count else 0
    except ValueError:
        raise EngineError(f"invalid restart policy {text!r}", 125) from None
    if retries < 0:
        raise EngineError("maximum retry count must be a positive integer", 125)
    return name, retries


def validate_name(name: str) -> str:
    name = name.lstrip("/")
    if not re.match(_NAME, name) or len(name) > 128:
        raise EngineError(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", 125)
    return name


def read_env_file(path: str) -> list[str]:
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise EngineError(f"open {path}: {e.strerror}", 125) from None
    result = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        result.append(line)
    return result


def parse_volume(spec: str) -> tuple[str, str, bool]:
    """-v SOURCE:TARGET[:ro|rw] -> (source, target, readonly). SOURCE is a host path (absolute)
    or a volume name; -v TARGET alone is an anonymous volume (source "")."""
    parts = spec.split(":")
    mode = ""
    if len(parts) == 3:
        source, target, mode = parts
    elif len(parts) == 2:
        source, target = parts
    elif len(parts) == 1:
        source, target = "", parts[0]
    else:
        raise EngineError(f"invalid volume specification: {spec!r}", 125)
    if mode not in ("", "ro", "rw"):
        raise EngineError(f"invalid mode {mode!r} in volume specification {spec!r}", 125)
    if not target.startswith("/"):
        raise EngineError(f"invalid volume specification: {spec!r}: the container path must be absolute", 125)
    if source and not source.startswith("/") and not re.match(_NAME, source):
        raise EngineError(f"invalid volume name {source!r}", 125)
    return source, target, mode == "ro"


def parse_tmpfs(spec: str) -> tuple[str, str]:
    target, _, opts = spec.partition(":")
    if not target.startswith("/"):
        raise EngineError(f"invalid tmpfs target {target!r}", 125)
    return target, opts


def parse_add_host(spec: str) -> str:
    """--add-host NAME:IP (or NAME=IP) as docker stores it in ExtraHosts: "NAME:IP". The name
    has no colon, so an IPv6 address may follow the first one."""
    import ipaddress
    sep = "=" if "=" in spec else ":"
    name, found, ip = spec.partition(sep)
    if not found or not name or not ip:
        raise EngineError(f'invalid argument "{spec}" for "--add-host" flag: bad format for add-host: "{spec}"', 125)
    if ip == "host-gateway":  # the default bridge's gateway, resolved at every start (etcfiles.py)
        return f"{name}:{ip}"
    try:
        ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        raise EngineError(f'invalid argument "{spec}" for "--add-host" flag: invalid IP address in add-host: "{ip}"',
                          125) from None
    return f"{name}:{ip.strip('[]')}"


def parse_dns(value: str) -> str:
    import ipaddress
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise EngineError(f'invalid argument "{value}" for "--dns" flag: {value} is not an ip address', 125) from None


_DOMAIN = r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})$"


def parse_dns_search(value: str) -> str:
    """A search domain, or "." (docker: no search domains at all)."""
    if value != "." and (not re.match(_DOMAIN, value) or ".." in value):
        raise EngineError(f'invalid argument "{value}" for "--dns-search" flag: {value} is not a valid domain', 125)
    return value


def parse_caps(values: list[str], flag: str) -> list[str]:
    """--cap-add/--cap-drop names, CAP_ optional, any case, or ALL; docker's CAP_NAME spelling."""
    from node.runtime.capabilities import CAPABILITIES
    out = []
    for value in values:
        name = value.strip().upper()
        if name != "ALL" and not name.startswith("CAP_"):
            name = "CAP_" + name
        if name != "ALL" and name not in CAPABILITIES:
            raise EngineError(f'invalid {flag}: unknown capability: "{value}"', 125)
        if name not in out:
            out.append(name)
    return out


def effective_caps(default: list[str], add: list[str], drop: list[str], privileged: bool) -> list[str]:
    """Docker's rule: --privileged is every capability the kernel knows; ALL in --cap-add starts
    from every one, ALL in --cap-drop from none; then the drops go and the adds come in.
    "Every" is every one the node itself holds: a capability it lacks cannot be granted (capset
    refuses it), as on a host whose own root runs without CAP_SYS_RESOURCE."""
    from node.engine.runtimes import effective_capabilities
    from node.runtime.capabilities import CAPABILITIES, last_cap
    held = effective_capabilities()
    known = [c for i, c in enumerate(CAPABILITIES[:last_cap() + 1]) if held & (1 << i)]
    if privileged:
        return list(known)
    base = list(known) if "ALL" in add else [] if "ALL" in drop else list(default)
    kept = [c for c in base if c not in drop]
    return kept + [c for c in add if c != "ALL" and c not in kept]


def parse_stop_signal(text: str) -> str:
    """--stop-signal NAME or number, kept as docker shows it in Config.StopSignal ("SIGUSR1")."""
    import signal
    name = text.strip().upper()
    if name.isdigit():
        valid = 0 < int(name) < signal.NSIG
    else:
        name = name if name.startswith("SIG") else "SIG" + name
        valid = name in signal.Signals.__members__
    if not valid:
        raise EngineError(f"Invalid signal: {text}", 125)
    return name


def parse_stop_timeout(value: int | None) -> int | None:
    """--stop-timeout seconds before SIGKILL; -1 waits for ever, as docker."""
    if value is not None and value < -1:
        raise EngineError(f"invalid --stop-timeout {value}: the least is -1 (wait for ever)", 125)
    return value


ULIMITS = ("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
           "rss", "rtprio", "rttime", "sigpending", "stack")


def parse_ulimit(spec: str) -> dict:
    """--ulimit NAME=SOFT[:HARD] as docker's HostConfig.Ulimits entry; -1 is unlimited."""
    name, sep, values = spec.partition("=")
    soft, _, hard = values.partition(":")
    try:
        limits = (int(soft), int(hard or soft))
    except ValueError:
        raise EngineError(f'invalid argument "{spec}" for "--ulimit" flag: invalid ulimit argument: {spec}', 125) from None
    if not sep:
        raise EngineError(f'invalid argument "{spec}" for "--ulimit" flag: invalid ulimit argument: {spec}', 125)
    if name not in ULIMITS:
        raise EngineError(f'invalid argument "{spec}" for "--ulimit" flag: invalid ulimit type: {name}', 125)
    if limits[1] != -1 and (limits[0] == -1 or limits[0] > limits[1]):
        raise EngineError(f'invalid argument "{spec}" for "--ulimit" flag: ulimit soft limit must be less '
                          f'than or equal to hard limit: {limits[0]} > {limits[1]}', 125)
    return {"Name": name, "Hard": limits[1], "Soft": limits[0]}


_NAMESPACED_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                       "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


def parse_sysctls(values: list[str], network_mode: str) -> dict[str, str]:
    """--sysctl KEY=VALUE, only those the kernel keeps per namespace (ipc, net), as docker; net.*
    cannot be set on the host's own network namespace."""
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key or "/" in key:
            raise EngineError(f'invalid argument "{item}" for "--sysctl" flag: sysctl \'{item}\' is not allowed', 125)
        if not (key in _NAMESPACED_SYSCTLS or key.startswith(("net.", "fs.mqueue."))):
            raise EngineError(f'invalid argument "{item}" for "--sysctl" flag: sysctl \'{item}\' is not allowed', 125)
        if key.startswith("net.") and network_mode == "host":
            raise EngineError(f'sysctl "{key}" not allowed in host network namespace', 125)
        out[key] = value
    return out

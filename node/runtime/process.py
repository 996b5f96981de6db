"""The last steps before exec, shared by a container's init and by `exec` into a container:
rlimits, user and groups, capabilities, no_new_privs, working directory, locating the program.

Exec failures map to Docker's exit codes: 127 when the program is not found, 126 when it is
found but cannot be executed.
"""
from __future__ import annotations

import os
import _signal  # the C module: signal.py wraps it in enums, ~5 ms of import for a one-shot command
import stat

from node.errors import ExitCodeError
from node.runtime import capabilities, syscalls as sc


class ProcessError(ExitCodeError):
    """The program could not be prepared or exec'd (126/127 as Docker uses them)."""


def find_program(name: str, env: list[str]) -> str:
    path_var = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    for item in env:
        if item.startswith("PATH="):
            path_var = item[5:]
    if "/" in name:
        candidates, lookup = [name], False
    else:
        candidates, lookup = [os.path.join(d or ".", name) for d in path_var.split(":")], True
    denied = None
    for candidate in candidates:
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and os.access(candidate, os.X_OK):
            return candidate
        denied = candidate
    if denied:
        raise ProcessError(f'exec: "{name}": permission denied', 126)
    if lookup:
        raise ProcessError(f'exec: "{name}": executable file not found in $PATH', 127)
    raise ProcessError(f'exec: "{name}": stat {name}: no such file or directory', 127)


def set_rlimits(rlimits: list[dict]) -> None:
    """OCI process.rlimits through libc (syscalls.setrlimit), not the `resource` module."""
    for item in rlimits or []:
        kind = sc.RLIMITS.get(str(item.get("type", "")))
        if kind is None:
            raise ProcessError(f"unknown rlimit {item.get('type')!r}")
        try:
            # the spec's values are uint64; from 2**63 on they mean RLIM_INFINITY, as before
            soft, hard = (sc.RLIM_INFINITY if int(v) >= 1 << 63 else int(v) for v in (item["soft"], item["hard"]))
            if soft < 0 or hard < 0:
                raise ValueError("negative limit")
            sc.setrlimit(kind, soft, hard)
        except (ValueError, OSError) as e:
            raise ProcessError(f"setrlimit {item['type']}: {e}") from None


def reset_signals() -> None:
    """Python ignores SIGPIPE and handles SIGINT; an exec'd program must start with defaults."""
    for sig in (_signal.SIGPIPE, _signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT,
                _signal.SIGCHLD, _signal.SIGWINCH, _signal.SIGXFSZ, _signal.SIGUSR1, _signal.SIGUSR2):
        _signal.signal(sig, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])


def drop_privileges(proc: dict) -> None:
    """Bounding set first (needs CAP_SETPCAP), then uid/gid with keepcaps, then the final sets."""
    caps = proc.get("capabilities")
    if caps is not None:
        capabilities.drop_bounding(capabilities.mask(caps.get("bounding")))
    user = proc.get("user") or {}
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    sc.prctl(sc.PR_SET_KEEPCAPS, 1)
    os.setgroups([int(g) for g in user.get("additionalGids") or []])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    sc.prctl(sc.PR_SET_KEEPCAPS, 0)
    if caps is not None:
        capabilities.apply(caps)
    if proc.get("noNewPrivileges"):
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)


def prepare(proc: dict) -> str:
    """Everything up to exec; returns the program path. Raises ProcessError."""
    args = proc.get("args") or []
    if not args:
        raise ProcessError("no command specified")
    env = proc.get("env") or []
    set_rlimits(proc.get("rlimits") or [])
    try:
        os.chdir(proc.get("cwd") or "/")
    except OSError as e:
        raise ProcessError(f"chdir to cwd ({proc.get('cwd')!r}) set in config.json failed: {e.strerror}")
    program = find_program(args[0], env)
    drop_privileges(proc)
    # permission can change with the uid: check again as the final user
    if not os.access(program, os.X_OK):
        raise ProcessError(f'exec: "{args[0]}": permission denied', 126)
    return program


def close_inherited_fds() -> None:
    """Only stdin, stdout and stderr may reach the program: whatever the agent inherited from
    its own parent (or opened without O_CLOEXEC) is closed at exec, as runc does."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the directory listing's own fd, already closed


def execute(program: str, proc: dict, seccomp_profile: dict | None = None) -> None:
    """Exec the program; the seccomp filter goes on last, so nothing after it needs more than
    the program itself will be allowed."""
    reset_signals()
    close_inherited_fds()
    # The OCI process.user.umask, else 0022 as runc sets it: never the agent caller's own umask.
    umask = (proc.get("user") or {}).get("umask")
    os.umask(umask if isinstance(umask, int) and 0 <= umask <= 0o777 else 0o022)
    if seccomp_profile:
        from node.runtime import seccomp
        try:
            seccomp.load(seccomp_profile)
        except (OSError, ValueError) as e:
            raise ProcessError(f"seccomp: {e}") from None
    env = dict(item.split("=", 1) if "=" in item else (item, "") for item in proc.get("env") or [])
    try:
        os.execve(program, proc["args"], env)
    except PermissionError as e:
        raise ProcessError(f'exec: "{proc["args"][0]}": {e.strerror}', 126)
    except OSError as e:
        raise ProcessError(f'exec: "{proc["args"][0]}": {e.strerror}', 127 if e.errno == 2 else 126)


def forget_host_environment() -> None:
    """Unset every variable, then zero the bytes exec put on our stack: those, not os.environ,
    are what /proc/PID/environ reads (fields 50 and 51 of /proc/self/stat bound them)."""
    os.environ.clear()
    with open("/proc/self/stat", "rb") as f:
        data = f.read()
    fields = data[data.rfind(b")") + 2:].split()
    start, end = int(fields[50 - 3]), int(fields[51 - 3])
    if 0 < start < end:
        sc.wipe(start, end - start)

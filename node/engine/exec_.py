"""`exec`: run another process in a running container — same namespaces (setns), same cgroup,
the container's capabilities, no_new_privs and environment, as its init had them.

The agent forks a child that joins the cgroup and the namespaces; joining a PID namespace only
affects children, so the child forks the process that execs (it is then inside the container's
PID namespace) and passes its exit status on. Exec failures come back on a close-on-exec pipe.
"""
from __future__ import annotations

import json
import os
import select
import signal

from node.engine import EngineError, users
from node.engine.records import Container
from node.engine.status import current_state


def _process_spec(container: Container, cmd, tty, env, workdir, user) -> dict:
    with open(container.bundle / "config.json") as f:
        spec = json.load(f)
    proc = dict(spec["process"])
    proc["args"] = list(cmd)
    merged = {e.partition("=")[0]: e for e in proc.get("env") or []}
    for item in env or []:
        key, sep, _ = item.partition("=")
        if sep:
            merged[key] = item
        elif key in os.environ:
            merged[key] = f"{key}={os.environ[key]}"
    proc["env"] = list(merged.values())
    if workdir:
        proc["cwd"] = workdir
    if user is not None:
        resolved = users.resolve(str(container.rootfs), user)
        proc["user"] = {"uid": resolved["uid"], "gid": resolved["gid"], "additionalGids": resolved["additionalGids"]}
        caps = dict(proc.get("capabilities") or {})
        if resolved["uid"] != 0:
            caps["effective"], caps["permitted"] = [], []
        else:
            caps["effective"] = caps["permitted"] = caps.get("bounding", [])
        proc["capabilities"] = caps
    proc["terminal"] = tty
    return {"process": proc, "cgroupsPath": (spec.get("linux") or {}).get("cgroupsPath"),
            "seccomp": (spec.get("linux") or {}).get("seccomp"),
            "namespaces": [ns["type"] for ns in (spec.get("linux") or {}).get("namespaces") or []]}


def exec_in_container(container: Container, cmd: list[str], interactive: bool = False, tty: bool = False,
                      env: list[str] | None = None, workdir: str | None = None, user: str | None = None) -> int:
    state = current_state(container)
    if state.get("Status") == "paused":
        raise EngineError(f"Container {container.id} is paused, unpause the container before exec", 1)
    if state.get("Status") != "running":
        raise EngineError(f"Container {container.id} is not running", 1)
    if not cmd:
        raise EngineError("no command specified", 1)
    plan = _process_spec(container, cmd, tty, env, workdir, user)
    target = state["Pid"]
    master = slave = None
    if tty:
        master, slave = os.openpty()
    report_r, report_w = os.pipe()
    child = os.fork()
    if child == 0:
        _child(plan, target, slave, interactive, report_w)
    os.close(report_w)
    if slave is not None:
        os.close(slave)
    report = b""
    if master is not None:
        report = _bridge(master, report_r, interactive)
    while True:
        data = os.read(report_r, 4096)
        if not data:
            break
        report += data
    os.close(report_r)
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    if master is not None:
        os.close(master)
    if report.startswith(b"E"):
        code_text, _, message = report[1:].decode(errors="replace").partition(" ")
        raise EngineError(message, int(code_text) if code_text.isdigit() else 126)
    return code if code >= 0 else 128 - code


def _child(plan: dict, target: int, slave, interactive: bool, report_w: int) -> None:
    code = 125
    try:
        from node.runtime import cgroups, namespaces, syscalls as sc
        from node.runtime.process import ProcessError, execute, prepare
        if plan["seccomp"]:
            from node.runtime.builtin import preload_seccomp
            preload_seccomp()  # the container's mount namespace has neither our modules nor libseccomp
        if plan["cgroupsPath"]:
            cgroup = cgroups.open_cgroup(plan["cgroupsPath"])
            if cgroup.exists():
                cgroup.add(os.getpid())
        import fcntl
        import termios  # an extension module: import it before the host's files are out of reach
        # the user namespace last: the network namespace may belong to the host's user namespace,
        # which only host root (still us until then) may enter
        order = [t for t in ("ipc", "uts", "network", "pid", "mount", "user") if t in plan["namespaces"]]
        if "user" in order:  # --userns=private: a hard limit cannot be raised once inside
            from node.runtime.process import set_rlimits
            set_rlimits(plan["process"].get("rlimits") or [])
        namespaces.join_process(target, order)
        grandchild = os.fork()
        if grandchild == 0:
            try:
                os.setsid()
                if slave is not None:
                    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
                    for fd in (0, 1, 2):
                        os.dup2(slave, fd)
                elif not interactive:
                    devnull = os.open("/dev/null", os.O_RDONLY)
                    os.dup2(devnull, 0)
                program = prepare(plan["process"])
                execute(program, plan["process"], plan["seccomp"])
            except ProcessError as e:
                os.write(report_w, f"E{e.exit_code} {e}".encode())
                os._exit(e.exit_code)
            except BaseException as e:  # noqa: BLE001
                os.write(report_w, f"E126 {e}".encode())
                os._exit(126)
        os.close(report_w)
        if slave is not None:
            os.close(slave)  # the pty must close when the process ends
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _, status = os.waitpid(grandchild, 0)
        code = os.waitstatus_to_exitcode(status)
        code = code if code >= 0 else 128 - code
    except BaseException as e:  # noqa: BLE001
        try:
            os.write(report_w, f"E126 {e}".encode())
        except OSError:
            pass
    os._exit(code)


def _bridge(master: int, report_r: int, interactive: bool) -> bytes:
    """Copy between our terminal and the pty until the process closes it."""
    import termios
    import tty as tty_mod
    saved = None
    if os.isatty(0):
        import fcntl
        try:
            fcntl.ioctl(master, termios.TIOCSWINSZ, fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))
        except OSError:
            pass
        saved = termios.tcgetattr(0)
        tty_mod.setraw(0)
    report = b""
    watch = [master, report_r] + ([0] if interactive else [])
    try:
        while master in watch:
            ready, _, _ = select.select(watch, [], [])
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    watch.remove(master)
                else:
                    os.write(1, data)
            if report_r in ready:
                data = os.read(report_r, 4096)
                if not data:
                    watch.remove(report_r)
                report += data
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    watch.remove(0)
                else:
                    os.write(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
    return report

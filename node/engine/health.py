"""Health checks: the container's Config.Healthcheck (the image's HEALTHCHECK, changed by the
--health-* flags) run by a checker process next to the running container, as docker's daemon
runs them, with State.Health (Status starting|healthy|unhealthy, FailingStreak, the last five
probes in Log) kept in state.json.

Why a process of its own: the monitor's one loop carries the container's stdio and must never
wait on a probe; the checker is forked by the monitor once the container runs (`start`), dies
with it (PR_SET_PDEATHSIG, and `stop` kills it after the init's exit) and runs each probe as an
`exec` into the container (node/engine/exec_.py), killing the probe's whole process tree at
its timeout (the checker is a subreaper and reaps what is left at once).

Docker's rules (moby daemon/health.go): the first probe after one interval (the start interval
during the start period, when set); exit 0 is healthy and resets the streak; a failure in the
start period does not count while it never was healthy; `retries` failures in a row are unhealthy; a probe past the
timeout counts as a failure with exit code -1; 4096 bytes of output are kept."""
from __future__ import annotations

import os
import re
import signal
import time

from node.engine import EngineError

SECOND = 1_000_000_000
DEFAULTS = {"Interval": 30 * SECOND, "Timeout": 30 * SECOND, "StartPeriod": 0,
            "StartInterval": 5 * SECOND, "Retries": 3}
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096
_UNITS = {"ns": 1, "us": 1000, "µs": 1000, "ms": 1_000_000, "s": SECOND, "m": 60 * SECOND, "h": 3600 * SECOND}
_PART = r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)"  # compiled when a flag asks (run's start-up)


def parse_duration(text: str, flag: str) -> int:
    """Go's time.ParseDuration, in nanoseconds ("1m30s", "500ms", "-1s", "0")."""
    body, sign = text, 1
    if body[:1] in "+-" and body:
        sign, body = (-1 if body[0] == "-" else 1), body[1:]
    if body == "0":
        return 0
    total, pos = 0.0, 0
    for m in re.finditer(_PART, body):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not body or pos != len(body):
        raise EngineError(f'invalid argument "{text}" for "{flag}" flag: time: invalid duration "{text}"', 125)
    return sign * int(total)


def healthcheck_config(opts, image_check: dict | None) -> dict | None:
    """Config.Healthcheck for a new container: the image's, with each --health-* flag given
    replacing its field (the daemon's merge), or {"Test": ["NONE"]} for --no-healthcheck."""
    given = {}
    api_check = getattr(opts, "healthcheck", None)
    if api_check is not None:  # the engine API's object: its fields, zero meaning "the image's"
        given = {k: v for k, v in api_check.items() if v not in (None, 0, [], "")}
        if given.get("Test") == ["NONE"]:
            return {"Test": ["NONE"]}
        for key in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
            if not isinstance(given.get(key, 0), int) or given.get(key, 0) < 0:
                raise EngineError(f"{key} in Healthcheck cannot be negative", 125)
    if opts.health_cmd:
        given["Test"] = ["CMD-SHELL", opts.health_cmd]
    for key, flag, value in (("Interval", "--health-interval", opts.health_interval),
                             ("Timeout", "--health-timeout", opts.health_timeout),
                             ("StartPeriod", "--health-start-period", opts.health_start_period),
                             ("StartInterval", "--health-start-interval", opts.health_start_interval)):
        if value is not None:
            ns = parse_duration(value, flag)
            if ns < 0:
                raise EngineError(f"{flag} cannot be negative", 125)
            if 0 < ns < 1_000_000:
                raise EngineError(f"{key} in Healthcheck cannot be less than 1ms", 125)
            if ns:
                given[key] = ns
    if opts.health_retries is not None:
        if opts.health_retries < 0:
            raise EngineError("--health-retries cannot be negative", 125)
        if opts.health_retries:
            given["Retries"] = opts.health_retries
    if opts.no_healthcheck:
        if given or opts.health_retries or any(v is not None for v in (
                opts.health_interval, opts.health_timeout, opts.health_start_period, opts.health_start_interval)):
            raise EngineError("--no-healthcheck conflicts with --health-* options", 125)
        return {"Test": ["NONE"]}
    merged = {k: v for k, v in (image_check or {}).items() if v not in (None, 0, [], "")}
    merged.update(given)
    return merged or None


def probe_command(check: dict | None) -> list[str] | None:
    """The argv a probe runs, or None when the container has no health check."""
    test = list((check or {}).get("Test") or [])
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    if test[0] == "CMD":
        return test[1:] or None
    return test  # an image written by an old builder: the words themselves


def status_suffix(state: dict) -> str:
    """docker ps: "Up 3 seconds (healthy)", "(health: starting)", "(unhealthy)"."""
    health = state.get("Health") or {}
    status = health.get("Status")
    if not status or status == "none":
        return ""
    return " (health: starting)" if status == "starting" else f" ({status})"


def start(container) -> "callable":
    """Fork the checker for a container that now runs; returns what stops it (a no-op when the
    container has no health check)."""
    command = probe_command(container.config.healthcheck)
    if command is None:
        return lambda: None
    health = dict(container.state().get("Health") or {})
    container.update_state(Health={"Status": "starting", "FailingStreak": 0, "Log": health.get("Log") or []})
    monitor = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            _checker_main(container, command, monitor)
        except BaseException:  # noqa: BLE001 - a checker never unwinds into the monitor's code
            import traceback
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)

    from node.forkguard import kill_and_reap
    return lambda: kill_and_reap(pid)


def _checker_main(container, command: list[str], monitor: int) -> None:
    _die_with_parent()
    if os.getppid() != monitor:
        return
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    log = os.open(container.dir / "monitor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    for fd, src in ((0, devnull), (1, log), (2, log)):
        os.dup2(src, fd)
    os.closerange(3, 65536)  # never hold the container's stdio pipes open
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # a probe's processes left behind (its helper killed at the timeout) come to us, and are
    # reaped at once: the container's init cannot finish exiting past an unreaped zombie
    import ctypes
    ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
    signal.signal(signal.SIGCHLD, _reap_children)
    check = {**DEFAULTS, **(container.config.healthcheck or {})}
    started = time.monotonic()
    while True:
        in_start = time.monotonic() - started < check["StartPeriod"] / SECOND
        wait = check["StartInterval"] if in_start and (container.config.healthcheck or {}).get("StartInterval") \
            else check["Interval"]
        time.sleep(wait / SECOND)
        if container.state().get("Status") == "paused":
            continue  # docker stops the checks of a paused container (an exec would fail)
        entry = run_probe(container, command, check["Timeout"] / SECOND)
        if container.state().get("Status") == "paused":
            continue  # a probe the pause caught: docker drops its result
        record(container, entry, check["Retries"],
               in_start_period=time.monotonic() - started < check["StartPeriod"] / SECOND)


def _die_with_parent() -> None:
    import ctypes
    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


_reaped: dict[int, int] = {}  # pid -> wait status, taken by the SIGCHLD handler


def _reap_children(_sig=None, _frame=None) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _reaped[pid] = status


def _wait(pid: int) -> int:
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:  # the handler was first
        return _reaped.pop(pid, 255 << 8)


def _kill_tree(top: int) -> None:
    """SIGKILL a process and all its descendants (the probe, its exec helper, and the command
    in the container: that one is in a session of its own, out of reach of killpg)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    todo, doomed = [top], []
    while todo:
        pid = todo.pop()
        doomed.append(pid)
        todo += children.get(pid, [])
    for pid in doomed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_probe(container, command: list[str], timeout: float) -> dict:
    """One probe: an exec of `command`, its output (4 KiB kept) and exit code; -1 past `timeout`."""
    from node.engine.records import now_iso
    begun = now_iso()
    out_r, out_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 126
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            os.close(out_r)
            os.close(out_w)
            from node.engine.exec_ import exec_in_container
            code = exec_in_container(container, command)
        except EngineError as e:
            os.write(2, f"{e}\n".encode())
            code = e.exit_code if e.exit_code else 126
        except BaseException as e:  # noqa: BLE001
            os.write(2, f"{e}\n".encode())
        finally:
            os._exit(code & 0xFF if code >= 0 else 126)
    os.close(out_w)
    output, deadline, timed_out = b"", time.monotonic() + timeout, False
    import select
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([out_r], [], [], left)
        if not ready:
            continue
        data = os.read(out_r, 65536)
        if not data:
            break
        output = (output + data)[:MAX_OUTPUT]
    if timed_out:
        _kill_tree(pid)
    os.close(out_r)
    status = _wait(pid)
    code = os.waitstatus_to_exitcode(status)
    if timed_out:
        return {"Start": begun, "End": now_iso(), "ExitCode": -1,
                "Output": f"Health check exceeded timeout ({_seconds(timeout)})"}
    return {"Start": begun, "End": now_iso(), "ExitCode": code if code >= 0 else 128 - code,
            "Output": output.decode("utf-8", "replace")}


def _seconds(timeout: float) -> str:
    return f"{timeout:g}s"


def record(container, entry: dict, retries: int, in_start_period: bool) -> dict:
    """Fold one probe into State.Health, under the record's lock."""
    with container.locked():
        state = container.state()
        health = dict(state.get("Health") or {"Status": "starting", "FailingStreak": 0, "Log": []})
        health["Log"] = (list(health.get("Log") or []) + [entry])[-MAX_LOG_ENTRIES:]
        if entry["ExitCode"] == 0:
            health["Status"], health["FailingStreak"] = "healthy", 0
        elif not (in_start_period and health.get("Status") == "starting"):
            health["FailingStreak"] = health.get("FailingStreak", 0) + 1
            if health["FailingStreak"] >= retries:
                health["Status"] = "unhealthy"
        changed = (state.get("Health") or {}).get("Status") != health["Status"]
        state["Health"] = health
        from node.atomic import write_json
        write_json(container.dir / "state.json", state)
    if changed:  # docker's event for a change of health
        from node.engine.events import container_event
        container_event(container, f"health_status: {health['Status']}")
    return health

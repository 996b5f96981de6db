"""The detached monitor's resident half: a small program of its own that stays beside a running
container (what containerd-shim is to Docker, conmon to podman).

Why a program and not the forked agent: the monitor used to be a fork of the `dockyard` command
that never exec'd, so every container kept the CLI's modules in memory for its whole life
(8 MiB PSS against containerd-shim's 4.9; bench/results/PROFILE.md). monitor.py still does the
heavy, short part in the fork — prepare the rootfs, network and bundle, create the container —
and then execs this file with ``python -I -S`` (no site, no environment: the interpreter and
the standard library only). Nothing of the image has run yet at that point: the init is blocked
until `start`, which is done from here, after this process is non-dumpable again (execve resets
the flag; see node/runtime/enter.py for why a monitor must be).

    python -I -S shim.py ROOT ID PID REPORT_FD STDIO BACKOFF STARTED HEALTH EVENT PROXY STARTER...

(monitor.py runs it as ``python -I -S -c BOOT ARGS...``, BOOT importing this module's main: a
script given by path is compiled on every start, ~3.5 ms before the init may run; a module's
bytecode is cached.)

PID is the container's init (already our child: the monitor is its subreaper, a flag execve
keeps), REPORT_FD the agent's report pipe (-1 on a restart), STDIO node.engine.stdio's
handover word, BACKOFF/STARTED the restart loop's state, HEALTH "health" when the container has
a health check (its checker, node/engine/health.py, is forked from here once the program runs;
only then is the engine imported while it runs) or "-", EVENT "FD:MAX_BYTES" of a pipe that
holds the "start" event's journal line but for its time (or "-"), PROXY the listening sockets of
the published ports' IPv6 proxy (node/network/userproxy.py's handover word, or "-"): forked from
here once the agent has its OK, so that its start-up is off the path to the container's first
answer (clients meanwhile wait in the listen backlog), STARTER the runtime handle's handover
(``fds START REPORT [unready]`` for the built-in runtime — "unready": its init may still be
setting up, its b"R" is read here before b"S" —, ``argv ...`` for runc/crun).

While the container runs this process holds: os, _ctypes (prctl), select, signal, json (the
log's lines) and this module. At the exit, the rest of the engine is imported to release
what prepare made, record the exit and apply the restart policy (monitor.after_life).
"""
import os
import sys

PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 4, 36


def _harden() -> None:
    prctl = _prctl()
    if prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 or prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        os._exit(125)  # never run a container next to a dumpable monitor


def _prctl():
    """libc's prctl(2) through _ctypes, as ctypes/__init__.py itself builds a CDLL function:
    importing ctypes (its ~40 types, struct, _endian) was ~2-3 ms of the shim's start, which
    the init waits for, and memory kept for the container's life. ctypes if that fails."""
    try:
        import _ctypes

        class _Int(_ctypes._SimpleCData):
            _type_ = "i"

        class _Function(_ctypes.CFuncPtr):
            _flags_ = _ctypes.FUNCFLAG_CDECL
            _restype_ = _Int

        class _Libc:
            _handle = _ctypes.dlopen(None)

        return _Function(("prctl", _Libc))
    except Exception:  # noqa: BLE001 - another Python's _ctypes: the public way
        import ctypes
        return ctypes.CDLL(None, use_errno=True).prctl


def _await_ready(report_fd: int) -> tuple[int, str] | None:
    """The built-in init's b"R", when the fork exec'd us before it came (create(ready=False):
    our interpreter started while the init set up): None, or (exit code, message) if the init
    failed instead (node/runtime/builtin.py await_ready, with os only)."""
    data = b""
    while data != b"R":
        chunk = os.read(report_fd, 4096)
        if not chunk:
            break
        data += chunk
    if data == b"R":
        return None
    from node import reportpipe
    return reportpipe.parse_error(data) or (125, "container init exited during create without a reason")


def _let_go(starter: list[str]) -> None:
    """The built-in runtime's init: the word that lets it exec its program (it loads its seccomp
    filter and execs while we go on); _start then reads how that went."""
    start_fd = int(starter[1])
    try:
        os.write(start_fd, b"S")
    finally:
        os.close(start_fd)


def _start(starter: list[str], let_go: bool = True) -> tuple[int, str] | None:
    """Let the init exec its program; (exit code, message) if it could not. ``let_go=False``:
    _let_go was called already."""
    if starter[0] == "fds":
        if let_go:
            _let_go(starter)
        report_fd = int(starter[2])
        chunks = []
        while chunk := os.read(report_fd, 4096):
            chunks.append(chunk)
        os.close(report_fd)
        data = b"".join(chunks)
        if not data:
            return None
        from node import reportpipe
        return reportpipe.parse_error(data) or (125, "container init exited during start without a reason")
    argv = starter[1:]
    log = argv[argv.index("--log") + 1] if "--log" in argv else None
    mark = os.stat(log).st_size if log and os.path.exists(log) else 0
    err_r, err_w = os.pipe()
    pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=[
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0), (os.POSIX_SPAWN_DUP2, err_w, 1),
        (os.POSIX_SPAWN_DUP2, err_w, 2)])
    os.close(err_w)
    output = b"".join(iter(lambda: os.read(err_r, 65536), b""))
    os.close(err_r)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        return None
    name = os.path.basename(argv[argv.index("--root") - 1]) if "--root" in argv else "runtime"
    from node.runtime.ocilog import last_error
    message = last_error(log, mark) if log else ""
    return 125, f"{name} start: {message or output.decode(errors='replace').strip()}"


def main(argv: list[str]) -> None:
    _harden()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    root, cid, pid, report_w, stdio_word, backoff, started, checked, event_word, proxy_word = argv[:10]
    starter = argv[10:]
    pid, report_w = int(pid), int(report_w)
    # The built-in runtime's start spawns nothing: the init may exec its program as soon as we
    # are non-dumpable again, and does while the rest of this start-up runs (its output waits in
    # its pipes). runc/crun's `start` is a child of ours, which must not inherit the pipes that
    # resume() and _take_prepared() make close-on-exec: it runs after them.
    failed = None
    let_go = starter[0] == "fds"
    created_only = False  # the init failed in its set-up: a failed create, not a failed start
    if let_go:
        try:
            if starter[3:] == ["unready"]:
                failed = _await_ready(int(starter[2]))
                created_only = failed is not None
            if failed is None:
                _let_go(starter)
        except Exception as e:  # noqa: BLE001 - the agent waits for a report either way
            failed = (125, f"starting the container: {e}")
    from node.engine.logs import LogWriter
    from node.engine.stdio import Stdio
    stdio = Stdio.resume(stdio_word, os.path.join(root, "containers", cid))
    prepared = _take_prepared(event_word)
    if failed is None:
        failed = _guarded_start(starter, let_go=not let_go)
    if failed is not None:
        _close_proxy(proxy_word)  # a restart binds the ports again
        from node.engine import monitor
        monitor.failed_in_shim(root, cid, stdio, pid, failed, report_w, int(backoff), created_only)
        return
    _start_event(root, cid, prepared)
    log = LogWriter(os.path.join(root, "containers", cid, f"{cid}-json.log"))
    if report_w >= 0:
        try:
            os.write(report_w, b"OK")
        except OSError:
            pass  # the agent went away: nobody to tell
        os.close(report_w)
    if proxy_word != "-":
        _spawn_proxy(os.path.join(root, "containers", cid), proxy_word)
    stop_health = _start_health(root, cid) if checked == "health" else None
    try:
        stdio.carry(log)
        status = _reap(pid)
        stdio.exit_code = os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    finally:
        if stop_health:
            stop_health()
        stdio.finish()
        log.close()
    from node.engine import monitor  # the rest of the engine, only now
    monitor.after_life(root, cid, status, int(backoff), float(started))


def _guarded_start(starter: list[str], let_go: bool = True) -> tuple[int, str] | None:
    try:
        return _start(starter, let_go)
    except Exception as e:  # noqa: BLE001 - the agent waits for a report either way
        return (125, f"starting the container: {e}")


def _take_prepared(event_word: str) -> tuple[bytes, int]:
    """The "start" event but for its time, which the fork that exec'd us left on a pipe
    (event_word "FD:MAX_BYTES", monitor._prepared_start_event), and the journal's size bound."""
    if event_word == "-":
        return b"", 0
    fd, _, limit = event_word.partition(":")
    try:
        return b"".join(iter(lambda: os.read(int(fd), 65536), b"")), int(limit)
    except (OSError, ValueError):
        return b"", 0
    finally:
        try:
            os.close(int(fd))
        except (OSError, ValueError):
            pass


def _start_event(root: str, cid: str, prepared: tuple[bytes, int]) -> None:
    """The journal's "start" (node/engine/events.py), before the agent hears OK: the prepared
    line with the time now, in one O_APPEND write as events.emit does; only a journal past
    MAX_BYTES needs events' rotation, in a short-lived child. Without a prepared line a child
    writes the whole event: it needs json, which this resident process does without (that
    child's imports cost ~18 ms before OK, which is why the line is prepared)."""
    prefix, max_bytes = prepared
    path = os.path.join(root, "events", "journal.jsonl")
    if prefix and os.path.isdir(os.path.dirname(path)):
        import time
        now_ns = time.time_ns()
        line = prefix + b',"time":%d,"timeNano":%d}\n' % (now_ns // 1_000_000_000, now_ns)
        from node.engine.journalfile import append_line
        size = append_line(path, line, make_dir=False)
        if size is None:
            return  # as emit: an event never fails the operation it reports
        if size <= max_bytes:
            return
        job = "rotate"
    else:
        job = "event"
    child = os.fork()
    if child == 0:
        try:
            from node.engine import events
            if job == "rotate":
                events._rotate(path)
            else:
                from node.engine.records import Container
                events.container_event(Container(root, cid), "start")
        finally:
            os._exit(0)
    os.waitpid(child, 0)


def _spawn_proxy(record_dir: str, word: str) -> None:
    """The IPv6 proxy of the published ports, a child of ours (it dies with us, and teardown
    stops it); this process only forks it and writes its pid file: the proxy's modules are
    imported in the child, not kept here for the container's life."""
    try:
        child = os.fork()
    except OSError:
        _close_proxy(word)
        return  # as a proxy that died: IPv4 (the kernel's DNAT) still serves
    if child == 0:
        code = 1
        try:
            from node.network import userproxy
            userproxy.serve_handed_over(record_dir, word)
            code = 0
        finally:
            os._exit(code)
    _close_proxy(word)
    from node.network import proxypid  # os only
    proxypid.write(record_dir, child)


def _close_proxy(word: str) -> None:
    if word == "-":
        return
    for part in word.partition("/")[2].split(","):
        try:
            os.close(int(part.rsplit(":", 1)[1]))
        except (OSError, ValueError, IndexError):
            pass


def _start_health(root: str, cid: str):
    from node.engine import health
    from node.engine.records import Container
    return health.start(Container(root, cid))


def _reap(pid: int) -> int:
    """As monitor._reap: every child on the way (an exec'd process whose helper died is
    re-parented to us), the init's status at the end."""
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255 << 8
        except InterruptedError:
            continue
        if got == pid:
            return status


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)

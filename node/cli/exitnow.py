"""Leave the process as soon as a command is done, without the interpreter's finalization.

A normal exit tears down every module and object the command loaded: ~7-9 ms of CPU for the
~140 modules of `dockyard run` (bench/results/PROFILE.md sections 20 and 23), for nothing the
kernel would not do anyway. ``os._exit`` skips that, and with it the work an exit is for; so it
is taken only when none of that work is pending: no atexit callback (logging, weakref.finalize,
tempfile and multiprocessing register one), no profiler or tracer (cProfile, trace), no thread that the interpreter would wait for (a
live non-daemon thread, or threading's own exit hooks, as concurrent.futures leaves), and the
two standard streams flushed. Files the commands write are closed (and fsynced where that is
promised) by the code that writes them, never left to finalization; tests/node/test_exitnow.py
runs the commands this matters to and checks that no file object is left open at the exit.
"""
from __future__ import annotations

import os
import sys


def pending_exit_work() -> str | None:
    """Why the interpreter's own exit is still needed, or None when nothing is left for it."""
    import atexit  # built in: no file to load
    if atexit._ncallbacks():
        return "atexit callbacks"
    if sys.getprofile() is not None or sys.gettrace() is not None:
        return "a profiler or tracer"  # `python -m cProfile`/`trace` write their report after main
    threading = sys.modules.get("threading")
    if threading is not None:
        if getattr(threading, "_threading_atexits", None):
            return "threading exit hooks"
        main = threading.main_thread()
        if any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate()):
            return "a non-daemon thread"
    return None


def exit_now(code: int) -> None:
    """``os._exit(code)`` once stdout and stderr are flushed, when nothing else is pending.
    Returns (and the caller exits as usual) otherwise, or if a flush fails: the interpreter's
    exit then reports that failure exactly as before."""
    if pending_exit_work() is not None:
        return
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except BaseException:  # noqa: BLE001 - EPIPE and the like: the normal exit handles it
        return
    os._exit(code & 0xFF)  # what exit(3) keeps of sys.exit(code), negative codes included

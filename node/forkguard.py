"""Our forked children. `own_process` marks the functions a forked helper may unwind through
(pyroute2 once forked such helpers from inside our calls; the network layer's own forks still
can): a helper that fails in an unexpected way would otherwise go on as a second copy of its
caller — a second monitor, or a process waiting for the network lock its parent holds (both
seen in tests). There, a process that is not the one that made the call exits at once (status
70), before any cleanup of the caller's runs. `kill_and_reap` ends a child we forked (the
health checker, the userland proxy) and collects its status."""
from __future__ import annotations

import functools
import os
import signal

STRAY_EXIT = 70


def own_process(func):
    @functools.wraps(func)
    def guarded(*args, **kwargs):
        caller = os.getpid()
        try:
            return func(*args, **kwargs)
        except BaseException:
            if os.getpid() != caller:
                os._exit(STRAY_EXIT)
            raise
    return guarded


def kill_and_reap(pid: int) -> None:
    """SIGKILL ``pid`` and reap it when it is our child (another parent reaps it otherwise)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass

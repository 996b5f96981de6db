"""pyroute2 forks helper children (to create a network namespace, to open a socket inside one)
from inside our calls. A helper that fails in an unexpected way unwinds through our stack
instead of exiting, and would go on as a second copy of its caller — a second monitor, or a
process that waits for the network lock its parent holds (both seen in tests). `own_process`
marks the functions such a fork may unwind through: there, a process that is not the one that
made the call exits at once (status 70), before any cleanup of the caller's runs."""
from __future__ import annotations

import functools
import os

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

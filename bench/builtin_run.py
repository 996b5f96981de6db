"""`python -m bench.builtin_run --loop N BUNDLE ID`: the built-in runtime's create, start, wait,
delete cycle N times in one warm process, as the agent calls it (the bench's in-process row).

The one-shot command the bench times against `runc run` is the runtime's own,
node/runtime/command.py (`python -I -S node/runtime/command.py run --bundle BUNDLE ID`);
`python -m bench.builtin_run BUNDLE ID` still runs one cycle the agent's way (no cgroup prewarm,
runpy and -m), for comparison.
"""
from __future__ import annotations

import os
import sys

from node.runtime.builtin import BuiltinRuntime


def main(bundle: str, container_id: str) -> int:
    runtime = BuiltinRuntime()
    created = runtime.create(container_id, bundle, (0, 1, 2))
    try:
        created.start()
        _, status = os.waitpid(created.pid, 0)
    finally:
        runtime.delete(container_id, bundle)
    return os.waitstatus_to_exitcode(status)


def loop(runs: int, bundle: str, container_id: str) -> float:
    """Median ms of `runs` create/start/wait/delete cycles in this one (warm) process."""
    import statistics  # here, not at the top: the one-shot form must not pay for these imports
    import time
    times = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        code = main(bundle, container_id)
        times.append((time.perf_counter() - start) * 1000)
        if code != 0:
            raise SystemExit(f"container exited with {code}")
    return statistics.median(times[1:])  # the first cycle warms imports and caches


if __name__ == "__main__":
    if sys.argv[1] == "--loop":
        print(f"{loop(int(sys.argv[2]), sys.argv[3], sys.argv[4]):.3f}")
    else:
        sys.exit(main(sys.argv[1], sys.argv[2]))

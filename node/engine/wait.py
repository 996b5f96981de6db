"""`wait`: block until the container stops, then give its exit code."""
from __future__ import annotations

import time

from node.engine.records import Container
from node.engine.status import current_state


def wait_container(container: Container, poll: float = 0.05) -> int:
    while True:
        state = current_state(container)
        if state.get("Status") in ("exited", "created", "dead"):
            return int(state.get("ExitCode", 0))
        time.sleep(poll)

"""`restart`: stop (the stop signal, then SIGKILL after the timeout), then start again."""
from __future__ import annotations

from node.engine import events
from node.engine.records import Container
from node.engine.start import start_container
from node.engine.stop import stop_container


def restart_container(root, container: Container, timeout: float | None = None) -> None:
    stop_container(container, timeout)
    start_container(root, container)
    events.container_event(container, "restart")

"""Small helpers every test module may use.

A test that needs a real part (root, a tool, a server) calls ``need``: on a developer's machine a
missing part skips the test with the reason; in CI (CI=true), where .ci/run installed and started
everything, a missing part fails the test instead, so a skip can never pass for a success.
"""
from __future__ import annotations

import os
import shutil
import socket
import time

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need(condition: bool, reason: str) -> None:
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


def need_root() -> None:
    need(os.geteuid() == 0, "needs root (namespaces, mounts, cgroups)")


def need_tool(*names: str) -> None:
    for name in names:
        need(shutil.which(name) is not None, f"needs {name} (run scripts/install-system-deps)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def purge_networks(root) -> None:
    """Remove the bridges, subnets and nftables table of the agent root ``root`` (the default
    bridge outlives its containers, like docker0; only a purge removes it). Every fixture whose
    root ran a container on a bridge network calls this before the root is deleted, or the shared
    machine keeps a bridge and a /16 per root."""
    from pathlib import Path
    if not (Path(root) / "network").is_dir():
        return
    from node.network import api
    api.purge(Path(root))


def wait_until(condition, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``condition`` until it holds: for work the kernel finishes in its own time (a
    namespace's devices are deleted by a kernel worker after its last reference goes)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} still not true after {timeout}s")
        time.sleep(0.02)

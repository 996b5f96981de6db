"""Shared fixtures. Server fixtures (dockerd, PostgreSQL, registries) live in tests/servers.py."""
from pathlib import Path

import pytest

pytest_plugins = ["tests.servers", "tests.seaweedfs"]


def _agent_roots(base: Path) -> list[Path]:
    """Agent roots (a ``network`` store inside) a few levels under ``base``."""
    found: list[Path] = []
    for depth in ("", "*/", "*/*/", "*/*/*/"):
        found += [p.parent.parent for p in base.glob(f"{depth}network/networks")]
    return found


@pytest.fixture(autouse=True)
def _purge_test_networks(request):
    """After each test (its other fixtures torn down first), purge the network state of every
    agent root under its tmp_path: the default bridge is kept while idle, like docker0, so a root
    deleted without a purge would leave a bridge, a subnet and an nft table on the host."""
    yield
    tmp = request.node.funcargs.get("tmp_path")
    if tmp is not None:
        from tests.helpers import purge_networks
        for root in _agent_roots(Path(tmp)):
            purge_networks(root)


@pytest.fixture(scope="session", autouse=True)
def _purge_session_networks(tmp_path_factory):
    """The same for roots made with tmp_path_factory (module and session fixtures)."""
    yield
    from tests.helpers import purge_networks
    for root in _agent_roots(tmp_path_factory.getbasetemp()):
        purge_networks(root)

"""Fixtures shared by the storage driver tests."""
from __future__ import annotations

import os

import pytest


@pytest.fixture
def no_aws(monkeypatch):
    """No AWS_* variable of the machine's may reach a driver: each test names its S3 server."""
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)

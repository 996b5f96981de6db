"""Shared fixtures. Server fixtures (dockerd, PostgreSQL, registries) live in tests/servers.py."""
pytest_plugins = ["tests.servers", "tests.seaweedfs"]

"""Benchmarks of Dockyard against the reference implementations; `python -m bench [--quick]`."""

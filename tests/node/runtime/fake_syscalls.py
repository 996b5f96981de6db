"""A recording fake of node/runtime/syscalls.py: the calls that change the kernel's state
(mount, umount2, pivot_root, unshare, setns, sethostname, prctl) are recorded in order instead of
made, so a test can check the order of mounts and namespace calls without root. Constants and
the pure helpers stay the real module's."""
from __future__ import annotations

from node.runtime import syscalls

RECORDED = ("mount", "umount2", "pivot_root", "unshare", "setns", "sethostname", "prctl", "idmapped_bind")


class RecordingSyscalls:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def install(self, monkeypatch) -> "RecordingSyscalls":
        for name in RECORDED:
            monkeypatch.setattr(syscalls, name, self._recorder(name))
        return self

    def _recorder(self, name: str):
        def record(*args):
            self.calls.append((name, *args))
            return 0
        return record

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def index(self, predicate) -> int:
        return next(i for i, c in enumerate(self.calls) if predicate(c))

"""Failed logins per key (a client address, a user name): at most ``limit`` failures in a
sliding ``window``; then every login attempt for that key (right password or not) is refused
until the oldest failure leaves the window, so guessing cannot go on at full speed.

An attempt is counted *before* the password is checked (``record_failure``) and forgiven only
when the check succeeds (``forgive``): bcrypt takes a while, and counting after it let 40 concurrent
guesses all pass the limit check before the first failure was written down (#13.5).

Memory stays bounded: at most ``max_clients`` addresses are tracked (the least recently failed
are forgotten first).
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from typing import Callable


class FailedLogins:
    def __init__(self, limit: int, window: float, max_clients: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.max_clients, self.clock = limit, window, max_clients, clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, client: str) -> deque[float] | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        cutoff = self.clock() - self.window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        return failures

    def retry_after(self, client: str) -> int:
        """Seconds until ``client`` may try again; 0 when it may now."""
        failures = self._recent(client)
        if failures is None or len(failures) < self.limit:
            return 0
        return max(1, math.ceil(failures[0] + self.window - self.clock()))

    def record_failure(self, client: str, stamp: float | None = None) -> None:
        failures = self._recent(client)
        if failures is None:
            failures = self._failures[client] = deque(maxlen=self.limit)
        failures.append(self.clock() if stamp is None else stamp)
        self._failures.move_to_end(client)
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)

    def forgive(self, stamp: float, *keys: str) -> None:
        """The attempt counted at ``stamp`` succeeded: it is no failure."""
        for key in keys:
            failures = self._failures.get(key)
            if failures is not None:
                try:
                    failures.remove(stamp)
                except ValueError:  # already left the window
                    pass
                if not failures:
                    del self._failures[key]

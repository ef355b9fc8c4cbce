"""An upload bandwidth limit shared by every transfer of one process.

A token bucket: each request takes as many tokens as it sends bytes before it is
sent, and tokens come back at ``rate`` bytes per second, up to ``burst``. A request
larger than the tokens on hand borrows the difference and its sender waits until
the debt is paid, so the average never exceeds ``rate``, whatever the request
sizes; a multipart upload's parts (8 MiB by default) leave in bursts of a part.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

MiB = 1024 * 1024


class Throttle:
    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("a bandwidth limit must be positive")
        self.rate = float(rate)
        # One second's worth, at least 1 MiB, so small files do not wait one by one.
        self.burst = float(burst if burst is not None else max(rate, MiB))
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._last = clock()

    def take(self, nbytes: int) -> float:
        """Wait until ``nbytes`` may be sent; returns the seconds waited."""
        if nbytes <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= nbytes
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait:
            self._sleep(wait)
        return wait

    def __repr__(self) -> str:
        return f"Throttle(rate={self.rate:.0f} B/s)"

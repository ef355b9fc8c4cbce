"""How much upload data one process holds in memory, across all its uploads.

Each upload reads (and encrypts) its next part into memory before sending it. With
several files uploading at once (the sync engine runs `workers` of them), per-upload
limits add up: 8 files x 8 parts x 8 MiB is 512 MiB. `UploadMemory` is one budget
for the whole process: a part or a single-request body takes its size from the
budget before it is read and gives it back once sent, and part buffers are pooled
across uploads, so memory stays flat however many and however large the files.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class UploadMemory:
    def __init__(self, capacity: int, buffer_size: int) -> None:
        if capacity <= 0 or buffer_size <= 0:
            raise ValueError("capacity and buffer size must be positive")
        self.capacity = capacity
        self.buffer_size = buffer_size
        self._used = 0
        self._peak = 0
        self._free: list[bytearray] = []
        self._ready = threading.Condition()

    @property
    def used(self) -> int:
        return self._used

    @property
    def peak(self) -> int:
        """The most bytes ever taken at once (for tests and benchmarks)."""
        return self._peak

    def take(self, nbytes: int) -> None:
        """Wait until ``nbytes`` fit in the budget, then hold them.

        A request larger than the whole budget waits until nothing else is held, so
        it still runs, alone.
        """
        with self._ready:
            while self._used and self._used + nbytes > self.capacity:
                self._ready.wait()
            self._used += nbytes
            self._peak = max(self._peak, self._used)

    def give(self, nbytes: int) -> None:
        with self._ready:
            self._used -= nbytes
            self._ready.notify_all()

    @contextmanager
    def held(self, nbytes: int) -> Iterator[None]:
        self.take(nbytes)
        try:
            yield
        finally:
            self.give(nbytes)

    def buffer(self) -> bytearray:
        """A part buffer of ``buffer_size`` bytes, reused when one is free."""
        with self._ready:
            if self._free:
                return self._free.pop()
        return bytearray(self.buffer_size)

    def recycle(self, buffer: bytearray) -> None:
        """Return a buffer from `buffer`; at most a budget's worth are kept."""
        with self._ready:
            if len(buffer) == self.buffer_size and (
                (len(self._free) + 1) * self.buffer_size <= self.capacity
            ):
                self._free.append(buffer)

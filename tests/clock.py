"""Clocks for tests: time passes through the job's clock seam (job/clock.py), never by sleeping."""

from __future__ import annotations

import threading
import time

from job.clock import Clock


class Later(Clock):
    """The system's clock, `offset` seconds ahead, and moved on by `advance()`: the job runs as if that
    much time had passed (a dead run's claims have expired, a download took long)."""

    def __init__(self, offset: float = 0.0):
        self.offset = offset
        self._lock = threading.Lock()

    def time(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.offset += seconds


class Jumping(Later):
    """A clock whose waits return at once and move its time on by what was waited: a run that would
    pause for minutes takes milliseconds, and its limits and timeouts see the minutes."""

    def __init__(self) -> None:
        super().__init__()
        self.waited = 0.0

    def sleep(self, seconds: float, until: threading.Event | None = None) -> bool:
        if until is not None and until.is_set():
            return True
        self.advance(max(0.0, seconds))
        with self._lock:
            self.waited += max(0.0, seconds)
        time.sleep(0)  # let the other threads run
        return until.is_set() if until is not None else False

"""Clocks for tests: time passes through the job's clock seam (job/clock.py), never by sleeping."""

from __future__ import annotations

import threading
import time

from job.clock import Clock


class Later(Clock):
    """The system's clock, `offset` seconds ahead: the job runs as if that much time had passed (a dead
    run's claims have expired, an earlier proof is old)."""

    def __init__(self, offset: float):
        self.offset = offset

    def time(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset


class Jumping(Clock):
    """A clock whose waits return at once and move its time forward by what was waited: a run that
    would pause for minutes takes milliseconds, and its limits and timeouts see the minutes."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()
        self.waited = 0.0

    def time(self) -> float:
        return time.time() + self._offset

    def monotonic(self) -> float:
        return time.monotonic() + self._offset

    def sleep(self, seconds: float, until: threading.Event | None = None) -> bool:
        if until is not None and until.is_set():
            return True
        with self._lock:
            self._offset += max(0.0, seconds)
            self.waited += max(0.0, seconds)
        time.sleep(0)  # let other threads run
        return until.is_set() if until is not None else False

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds

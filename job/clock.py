"""The job's time, in one seam: wall-clock time (claims, journals), monotonic time (limits, waits) and
waiting. Everything that decides by time (a claim's expiry, a limit, a settle or face wait, the rehash
age) reads and waits through a Clock, so tests drive time instead of sleeping (`tests/clock.py` has one
that jumps forward when waited on). What only measures or paces (a report's start and end, metrics'
timestamps, step timings, the gate's batching) and the claim protocol's real elapsed time (see
`move/claim.py`) read the system clock."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Any


def instant(text: Any) -> datetime | None:
    """An ISO 8601 time as Immich or the job spells it ('...Z' or an offset), aware; None when `text` is
    not one. A time spelled without a zone is taken as UTC, Immich's zone: the one rule for every time
    the job reads."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def seconds(text: Any) -> float | None:
    """`instant` as seconds since the epoch."""
    moment = instant(text)
    return moment.timestamp() if moment is not None else None


class Clock:
    def time(self) -> float:
        """Seconds since the epoch (stored in journals and claims, compared across processes)."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (limits and waits within one process)."""
        return time.monotonic()

    def sleep(self, seconds: float, until: threading.Event | None = None) -> bool:
        """Wait `seconds`, or less when `until` is set meanwhile; True when it was set."""
        if until is not None:
            return until.wait(max(0.0, seconds))
        if seconds > 0:
            time.sleep(seconds)
        return False


SYSTEM = Clock()

"""The values a setting can take: the enums, durations, and the threads and connections a
concurrency makes. Pure; `settings.py` reads the environment into them."""

from __future__ import annotations

import re
from enum import Enum


class DeleteMode(str, Enum):
    TRASH = "trash"  # to Immich's trash: restorable until the trash is emptied
    FORCE = "force"  # for good, now
    KEEP = "keep"  # not at all: copy only


class QueueAction(str, Enum):
    PAUSE = "pause"
    STOP = "stop"


class LogFormat(str, Enum):
    AUTO = "auto"
    TEXT = "text"
    JSON = "json"


class Switch(str, Enum):
    AUTO = "auto"
    ON = "on"
    OFF = "off"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> float | None:
    """'90', '90s', '30m', '2h', '1d' -> seconds. Empty -> None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError("must be a duration such as 90, 90s, 30m, 2h or 1d")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("must be greater than zero")
    return seconds


class Pools:
    """How many threads and connections a run uses, from EXT2INT_CONCURRENCY (n), in one place:
    - n movers: each reads, claims and transfers one unit; the only threads that hold bytes in flight;
    - 32 + 16n finishers: each waits for its claim to settle and for Immich, carries and verifies; they
      mostly wait (a few seconds each), so there are many: transfers rarely wait for a free one;
    - 3n helpers: independent requests of one move sent side by side (reads of a source and its target);
    - 4n + 4 HTTP connections, so that movers, finishers and helpers rarely wait for a free one."""

    def __init__(self, movers: int, finishers: int, helpers: int, connections: int):
        self.movers, self.finishers, self.helpers, self.connections = movers, finishers, helpers, connections

    @classmethod
    def of(cls, concurrency: int) -> Pools:
        return cls(concurrency, 32 + 16 * concurrency, 3 * concurrency, 4 * concurrency + 4)

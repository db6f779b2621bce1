"""Fault injection for the fake server: the server decides, from the requests it sees, when to fail,
stall, cut a connection, truncate a body, or kill the job process. Tests are exact, not timing-based.

Actions:
  notify        call the notify hook before handling, then answer normally (send the job a signal)
  status        answer `status` (5xx, 429 with `retry_after`) without doing anything
  respond       answer `status` with the raw `body` and `content_type` (HTML pages, broken JSON)
  delay         sleep `seconds` before handling (a timeout when longer than the client waits)
  drop          close the connection without answering, before handling
  drop_after    handle the request (state changes!), then close without answering: the "lost answer"
  truncate      send the announced Content-Length but only `after_bytes` of the body, then close
  wrong_length  announce a Content-Length off by `delta`
  slow          send the body in small pieces with `seconds` between them
  kill          call the kill hook before handling (the job dies between two steps)
  kill_after    handle, then call the kill hook (the step happened; the job never saw the answer)
  kill_mid_body call the kill hook after `after_bytes` of a download sent or an upload received
  hold          keep the request waiting until the test calls `release()` (an event, not a duration)
  meet          let the request through only once `count` matching requests are waiting together
                (proves they were in flight at the same time); `met` tells whether they did
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field

ACTIONS = {"notify", "respond", "status", "delay", "drop", "drop_after", "truncate", "wrong_length", "slow", "kill",
           "kill_after", "kill_mid_body", "hold", "meet"}


@dataclass
class Fault:
    action: str
    method: str | None = None
    route: str | None = None  # a route template such as '/assets/{id}/original', or a regex
    nth: int | None = None  # fire on the nth matching request (1-based); None: on the first one
    times: int = 1  # how many times it fires; 0 = every matching request from `nth` on
    probability: float = 1.0
    status: int = 503
    retry_after: int | None = None
    seconds: float = 0.0
    after_bytes: int = 0
    delta: int = 0
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    count: int = 2
    key: str | None = None  # only requests made with this API key (one user's, on a family server)
    seen: int = 0
    fired: int = 0
    met: bool = False
    released: threading.Event = field(default_factory=threading.Event)
    barrier: threading.Barrier | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown fault action {self.action}")
        if self.action == "meet":
            self.barrier = threading.Barrier(self.count)

    def release(self) -> None:
        """A held request goes on."""
        self.released.set()

    def wait(self) -> None:
        """Hold or meet, as the action says (at most 60 s: a test that forgot to release fails, not hangs)."""
        if self.action == "hold":
            self.released.wait(60)
        elif self.action == "meet":
            try:
                self.barrier.wait(60)
                self.met = True
            except threading.BrokenBarrierError:
                pass

    def matches(self, method: str, route: str, key: str | None = None) -> bool:
        if self.method and self.method != method:
            return False
        if self.key is not None and self.key != key:
            return False
        if self.route and self.route != route and not re.fullmatch(self.route, route):
            return False
        return True


@dataclass
class FaultPlan:
    faults: list[Fault] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, action: str, **kwargs) -> Fault:
        fault = Fault(action, **kwargs)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def take(self, method: str, route: str, key: str | None = None) -> list[Fault]:
        """The faults that fire for this request (counters advance whether or not they fire)."""
        firing = []
        with self._lock:
            for fault in self.faults:
                if not fault.matches(method, route, key):
                    continue
                fault.seen += 1
                if fault.nth is not None and fault.seen < fault.nth:
                    continue
                if fault.times and fault.fired >= fault.times:
                    continue
                if fault.probability < 1.0 and self.rng.random() >= fault.probability:
                    continue
                fault.fired += 1
                firing.append(fault)
        return firing

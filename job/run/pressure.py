"""Back-pressure: pause (or stop) while Immich's queues hold more waiting jobs than EXT2INT_QUEUE_THRESHOLD,
so that the job never piles work onto a busy server. Reading the queues needs an admin's key."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from job.clock import Clock
from job.immich import errors
from job.immich.client import ImmichClient
from job.report import Report
from job.settings import QueueAction, Settings

log = logging.getLogger("ext2int")


class BackPressure:
    def __init__(self, client: ImmichClient, settings: Settings, clock: Clock, stop: threading.Event,
                 on_backlog: Callable[[int], None] | None, on_throttle: Callable[[float], None] | None):
        self.client, self.settings, self.clock, self.stop = client, settings, clock, stop
        self.on_backlog, self.on_throttle = on_backlog, on_throttle
        self._last_check: float | None = None
        self._disabled = False

    def wait(self, report: Report, stop_reason: Callable[[], str]) -> str:
        """Return at once, or once the backlog drained; or why the run should end now ("" to go on)."""
        s = self.settings
        if s.queue_threshold <= 0 or self._disabled:
            return ""
        if self._last_check is not None and self.clock.monotonic() - self._last_check < min(s.queue_poll, 2.0):
            return ""
        paused_since = None
        while True:
            self._last_check = self.clock.monotonic()
            try:
                backlog = self.client.queue_backlog().total
            except (errors.Forbidden, errors.PermissionMissing) as exc:
                self._disabled = True
                report.notes.append(f"back-pressure off: no key of this run can read Immich's queues ({exc.call}: admin "
                                    "and job.read/queue.read needed)")
                return ""
            if self.on_backlog:
                self.on_backlog(backlog)
            if backlog <= s.queue_threshold:
                return ""
            if s.queue_action is QueueAction.STOP:
                return f"Immich's queues hold {backlog} jobs (EXT2INT_QUEUE_THRESHOLD={s.queue_threshold})"
            if paused_since is None:
                paused_since = self.clock.monotonic()
                log.info("throttled: Immich's queues hold %d jobs, above %d; pausing", backlog, s.queue_threshold)
            waited = self.clock.monotonic() - paused_since
            if waited >= s.queue_max_pause:
                return f"Immich's queues stayed above {s.queue_threshold} jobs for {waited:.0f}s"
            if self.stop.is_set():
                return stop_reason() or "stopped"
            step = min(s.queue_poll, s.queue_max_pause - waited)
            self.clock.sleep(step, until=self.stop)
            report.throttled_seconds += step
            if self.on_throttle:
                self.on_throttle(step)

"""Signals: the first SIGTERM or SIGINT ends a run gently, a second one at once."""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

from job.run.runner import Runner
from job.settings import Settings

log = logging.getLogger("ext2int")


class Signals:
    """First SIGTERM/SIGINT: take no new assets, let those in flight finish within the grace period; a
    signal that arrives before the run has started stops it as soon as it starts. Second: exit at once
    (a move cut anywhere is completed by the next run)."""

    def __init__(self, settings: Settings, on_first=None):
        self.settings, self.on_first = settings, on_first
        self.first: str | None = None
        self.runners: list[Runner] = []
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.first is not None:
            log.warning("%s again: exiting now; the next run completes what was in flight", name)
            os._exit(128 + signum)
        self.first = name
        log.warning("%s: finishing the assets in flight (up to %.0fs), taking no new ones", name,
                    self.settings.shutdown_grace)
        for runner in self.runners:
            runner.request_stop(name)
        if self.on_first:
            self.on_first()

    def attach(self, runner: Runner) -> None:
        self.runners.append(runner)
        if self.first is not None:
            runner.request_stop(self.first)

    def forget_runs(self) -> None:
        """Service mode: the run that ended no longer needs signals."""
        self.runners.clear()

    def abandoned(self) -> bool:
        return any(runner.abandoned for runner in self.runners)

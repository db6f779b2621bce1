"""Where every unit's outcome is recorded, for every command (run, plan, verify, undo, and the gate's
verdicts, which arrive through run): the report, the stop rule, and the edges (metrics, the log line, the
progress bar). An outcome is made and ended in job/outcome.py; it is recorded here, once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from job.outcome import Outcome, Stage
from job.report import Report

log = logging.getLogger("ext2int")


@dataclass
class Observer:
    """Hooks for the edges (metrics, progress bar, logs). All optional; called from worker threads."""

    on_outcome: Callable[[Outcome], None] | None = None
    on_bytes: Callable[[int], None] | None = None
    on_step: Callable[[str, float], None] | None = None
    on_backlog: Callable[[int], None] | None = None
    on_throttle: Callable[[float], None] | None = None


class Recorder:
    """Records each outcome once: into the report, through the observer, and, for a failure no other unit
    can avoid (the API key lacks a permission: Outcome.fail), by stopping the command (`halt`)."""

    def __init__(self, report: Report, observer: Observer | None = None, halt: Callable[[str], None] | None = None):
        self.report, self.observer, self.halt = report, observer or Observer(), halt
        self._lock = threading.Lock()
        self._seen: set[int] = set()

    def __call__(self, outcome: Outcome) -> None:
        with self._lock:
            if id(outcome) in self._seen:
                raise RuntimeError(f"{outcome.path}: recorded twice (a bug)")
            self._seen.add(id(outcome))
        if not outcome.ended:  # a bug: the unit must still be accounted for, and never as better than failed
            log.error("%s reached the report without an outcome (a bug in ext2int)", outcome.path)
            outcome.fail(Stage.INCOMPLETE, "it ended without an outcome (a bug in ext2int: please report it)")
        self.report.add(outcome)
        if outcome.stops_run and self.halt is not None:
            self.halt(outcome.stops_run)
        if self.observer.on_outcome:
            self.observer.on_outcome(outcome)

"""What a person sees of a run: one log line per asset (level and text from the outcome table), the
summary at the end, and the progress bar on a terminal."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from typing import Any

from job.commands import Command
from job.metrics import Metrics
from job.outcome import Kind, Outcome
from job.report import Report, human_bytes
from job.run.recorder import Observer
from job.settings import Settings, Switch

log = logging.getLogger("ext2int")


def emit_summary(report: Report, settings: Settings, command: Command) -> None:
    """The report file, the terminal summary and the summary log line: a report that cannot be written
    (its folder checked at start, then gone) costs only itself."""
    if settings.report_path:
        try:
            report.write_json(settings.report_path)
        except OSError as exc:
            log.error("could not write the report to %s (%s); the summary below and the metrics still stand",
                      settings.report_path, exc.strerror or exc)
    if command is Command.PLAN or sys.stdout.isatty():
        for line in report.text_lines():
            print(line)
    counts = report.counts()
    log.info("%s finished: %s", command, ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing to do",
             extra={"event": "summary", "run": report.run_id, "counts": dict(counts), "bytes": report.moved_bytes,
                    "durationSeconds": round(report.duration, 3), "remaining": report.remaining,
                    "stoppedBecause": report.stopped_because})


def observer_for(metrics: Metrics, progress: Progress | None, owners: dict[str, str] | None = None) -> Observer:
    """`owners`: library id -> its owner's name, for the log lines."""
    owners = owners or {}

    def on_outcome(outcome: Outcome) -> None:
        metrics.on_outcome(outcome)
        log_outcome(outcome, owners.get(outcome.library_id, ""))
        if progress:
            progress.outcome(outcome)

    def on_bytes(n: int) -> None:
        if progress:
            progress.bytes(n)

    return Observer(on_outcome=on_outcome, on_bytes=on_bytes, on_step=metrics.on_step,
                    on_backlog=metrics.on_backlog, on_throttle=metrics.on_throttle)


def log_outcome(o: Outcome, user: str = "") -> None:
    """One line per unit: its kind's level, the path, whose it is, and why (when it was not moved)."""
    fields: dict[str, Any] = {"event": "asset", "outcome": o.kind.value, "assetId": o.asset_id, "path": o.path,
                              "library": o.library_id, "user": user, "bytes": o.bytes, "assets": o.assets}
    if o.target_id:
        fields["targetId"] = o.target_id
    if not o.info.final:
        fields.update(reason=o.reason, differences=o.differences)
        if o.kind is Kind.FAILED:
            fields["stage"] = o.stage
    log.log(o.info.level, "%s", o.line(), extra=fields)


class Progress:
    """A progress bar (tqdm) for assets and bytes, on a terminal only. While it shows, log lines are
    written above it (tqdm's logging redirect), never glued onto it."""

    def __init__(self) -> None:
        self.bar = None
        self.moved = 0
        self._lock = threading.Lock()
        self._redirect = contextlib.ExitStack()

    @classmethod
    def maybe(cls, settings: Settings) -> Progress | None:
        if settings.progress is Switch.OFF or (settings.progress is Switch.AUTO and not sys.stderr.isatty()):
            return None
        return cls()

    def start(self, total: int) -> None:
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        self.bar = tqdm(total=total, unit="asset", dynamic_ncols=True, file=sys.stderr, leave=True)
        self._redirect.enter_context(logging_redirect_tqdm([logging.getLogger("ext2int")]))

    def outcome(self, outcome: Outcome) -> None:
        if self.bar is not None and outcome.info.counts:
            self.bar.update(1)

    def bytes(self, n: int) -> None:
        with self._lock:
            self.moved += n
            if self.bar is not None:
                self.bar.set_postfix_str(human_bytes(self.moved), refresh=False)

    def close(self) -> None:
        self._redirect.close()
        if self.bar is not None:
            self.bar.close()

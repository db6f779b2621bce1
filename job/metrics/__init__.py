"""Prometheus metrics: served on /metrics in service mode, pushed to a Pushgateway by a run-once run
(Prometheus' advice for batch jobs). Prefix `ext2int_`, base units, `_total` counters.

Both modes expose the same series with the same meaning, so one dashboard and one set of alerts serve a
CronJob that pushes and a service that is scraped (README, "Metrics and Grafana"):
- counters only grow: a run-once run adds to the totals its Pushgateway group holds (pushgateway.py);
- every series a run can write exists from the run's start, at 0: what a run did not do is a 0, not a gap;
- nothing is exported before it is known: no last success before a run succeeded, no interval between
  runs before a second run.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics, start_http_server

from job import __version__
from job.immich.models import Library
from job.metrics.families import PREFIX, LibraryGauges, Moments, Shelf, _Only
from job.metrics.pushgateway import Carried, Exposed, Gateway
from job.outcome import KINDS, RUN_KINDS, Hold, Kind, Outcome, Skip, Stage
from job.report import Report

__all__ = ["Gateway", "Metrics", "OUTCOMES", "PREFIX", "REASONS", "stuck"]

disable_created_metrics()  # `_created` series would double every counter and mean nothing across pushes

OUTCOMES = tuple(k.value for k in RUN_KINDS)
RESULTS = ("success", "partial", "error")
# The steps a move times (job/move: each `_step`, and the gate's share of its delete request)
STEPS = tuple(s.value for s in (Stage.READ, Stage.CLAIM, Stage.UPLOAD, Stage.CARRY, Stage.VERIFY, Stage.GATE,
                                Stage.DELETE))

# Every (outcome, reason) a unit can end with: the `reason` label of assets_total (see Outcome.label).
REASONS: dict[str, tuple[str, ...]] = {
    Kind.UPLOADED.value: ("",), Kind.MERGED.value: ("",), Kind.WAITING.value: ("",),
    Kind.SKIPPED.value: tuple(s.value for s in Skip), Kind.HELD.value: tuple(h.value for h in Hold),
    Kind.FAILED.value: tuple(s.value for s in Stage),
}
assert set(REASONS) == set(OUTCOMES)

# Skips that leave the asset in its library, in Immich's remaining count, until someone acts: "stuck",
# not "left to move". Trashed and locked assets are not in that count; a claim passes by itself.
LASTING_SKIPS = frozenset({Skip.OFFLINE, Skip.LIVE_VIDEO_UNAVAILABLE, Skip.EMPTY, Skip.KEPT, Skip.REIMPORT_LOOP,
                           Skip.UNDONE})


def stuck(outcome: Outcome) -> bool:
    """The unit stays in its library until someone acts (held, or skipped for a lasting reason)."""
    return outcome.kind is Kind.HELD or (outcome.kind is Kind.SKIPPED and outcome.reason in LASTING_SKIPS)


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()  # this process' own values
        self.assets = Counter(f"{PREFIX}_assets", "Assets handled, by library, outcome (uploaded, merged, held, "
                              "waiting, skipped, failed) and reason (skip or hold reason, or failure stage).",
                              ["library", "outcome", "reason"], registry=r)
        self.bytes = Counter(f"{PREFIX}_bytes", "Bytes transferred from external to internal assets.", registry=r)
        self.runs = Counter(f"{PREFIX}_runs", "Runs ended, by result (success; partial: some assets failed; error: "
                            "the run could not start, or Immich failed it).", ["result"], registry=r)
        self.skipped_runs = Counter(f"{PREFIX}_skipped_runs", "Scheduled runs skipped because the previous one was "
                                    "still going.", registry=r)
        self.throttled = Counter(f"{PREFIX}_throttled_seconds", "Seconds paused because Immich's queues were too full.",
                                 registry=r)
        self.steps = Histogram(f"{PREFIX}_step_duration_seconds", "Time spent in each step of a move.", ["step"],
                               buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800), registry=r)
        self.libraries: dict[str, Shelf] = {}
        r.register(LibraryGauges(self.libraries))
        self.backlog = Gauge(f"{PREFIX}_immich_queue_backlog_jobs", "Jobs waiting or active in Immich's heavy queues, "
                             "as last seen.", registry=r)
        self.http = Gauge(f"{PREFIX}_last_run_http_requests", "HTTP requests sent to Immich by the last run.", registry=r)
        moments = Moments(registry=r)
        self.last_run = moments.add("last_run_timestamp_seconds", "When the last run ended (Unix time).")
        self.interval = moments.add("last_run_interval_seconds", "From the end of the run before the last to the end "
                                    "of the last: with the last run's moves, the pace (absent until a second run).")
        self.last_success = moments.add("last_success_timestamp_seconds", "When the last run without failures ended "
                                        "(absent until one did).")
        self.failing_since = moments.add("failing_since_timestamp_seconds", "When the first of the runs that failed "
                                         "since the last success ended; 0 while the last run succeeded.")
        self.last_progress = moments.add("last_progress_timestamp_seconds", "When a run last moved an asset (before "
                                         "any did: when the first run ended).")
        self.last_duration = Gauge(f"{PREFIX}_last_run_duration_seconds", "Wall time of the last run.", registry=r)
        self.last_assets = Gauge(f"{PREFIX}_last_run_assets", "Assets per library, outcome and reason in the last run.",
                                 ["library", "outcome", "reason"], registry=r)
        self.last_bytes = Gauge(f"{PREFIX}_last_run_bytes", "Bytes moved by the last run.", registry=r)
        self.last_throttled = Gauge(f"{PREFIX}_last_run_throttled_seconds", "Seconds the last run was paused by "
                                    "back-pressure.", registry=r)
        self.waiting = Gauge(f"{PREFIX}_waiting_assets", "Assets copied but not yet deleted: waiting for Immich "
                             "(faces, metadata).", registry=r)
        self.running = Gauge(f"{PREFIX}_run_in_progress", "1 while a run is going.", registry=r)
        self.audit = Gauge(f"{PREFIX}_audit_assets", "Assets per outcome of the last verify, undo or undo-plan.",
                           ["command", "outcome"], registry=r)
        self.audit_time = Gauge(f"{PREFIX}_audit_timestamp_seconds", "When the last verify, undo or undo-plan ended.",
                                ["command"], registry=r)
        self.info = Info(f"{PREFIX}_build", "Version of immich-ext2int and of the Immich server it talks to.", registry=r)
        self.info.info({"version": __version__, "immich_version": "unknown"})
        for result in RESULTS:
            self.runs.labels(result)
        for step in STEPS:
            self.steps.labels(step)
        self.carry(Carried())

    # --- a run's start --------------------------------------------------------------------------

    def carry(self, carried: Carried) -> None:
        """Continue from what a Pushgateway group held (run-once): its counters add to ours, and the
        gauges that describe more than one run start from its values."""
        self.exposed = CollectorRegistry(auto_describe=False)  # what is served and pushed
        self.exposed.register(Exposed(self.registry, carried))
        for moment in (self.last_success, self.failing_since, self.last_run, self.last_progress):
            value = carried.gauge(moment.name)
            moment.value = moment.value if value is None else value
        for labels, _ in carried.labelled(f"{PREFIX}_library_info"):
            shelf = self.libraries.setdefault(labels["library"], Shelf(labels["library"]))
            shelf.name, shelf.owner = labels.get("name", shelf.name), labels.get("owner", "")
        for labels, value in carried.labelled(f"{PREFIX}_remaining_assets"):
            self.libraries.setdefault(labels["library"], Shelf(labels["library"])).remaining = value
        for labels, value in carried.labelled(f"{PREFIX}_stuck_assets"):
            self.libraries.setdefault(labels["library"], Shelf(labels["library"])).stuck = value
        for labels, _ in carried.labelled(f"{PREFIX}_build_info"):  # Immich's version, until a run sees it again
            self.server_version(labels.get("immich_version", "unknown"))
        for labels, value in carried.labelled(f"{PREFIX}_audit_assets"):
            self.audit.labels(labels["command"], labels["outcome"]).set(value)
        for labels, value in carried.labelled(f"{PREFIX}_audit_timestamp_seconds"):
            self.audit_time.labels(labels["command"]).set(value)
        for gauge in (self.waiting, self.backlog):  # as last seen, until a run sees them again
            value = carried.gauge(gauge._name)
            if value is not None:
                gauge.set(value)

    def prepare(self, libraries: Iterable[Library], owners: dict[str, str] | None = None) -> None:
        """The libraries this run moves: their names, and every series at 0. Libraries no longer moved
        leave the per-library gauges."""
        owners = owners or {}
        before = self.libraries.copy()
        self.libraries.clear()
        for lib in libraries:
            shelf = before.get(lib.id) or Shelf(lib.id)
            shelf.name, shelf.owner = lib.name or lib.id, owners.get(lib.ownerId, shelf.owner)
            self.libraries[lib.id] = shelf
            for outcome, reasons in REASONS.items():
                for reason in reasons:
                    self.assets.labels(lib.id, outcome, reason)

    # --- live hooks (called from worker threads) ------------------------------------------------

    def on_outcome(self, outcome: Outcome) -> None:
        if outcome.kind not in RUN_KINDS:
            return  # verify and undo count in ext2int_audit_assets, at their end
        self.assets.labels(outcome.library_id, outcome.kind.value, outcome.label).inc(outcome.assets)
        if KINDS[outcome.kind].final:
            self.bytes.inc(outcome.bytes)

    def on_step(self, step: str, seconds: float) -> None:
        self.steps.labels(step).observe(seconds)

    def on_backlog(self, jobs: int) -> None:
        self.backlog.set(jobs)

    def on_throttle(self, seconds: float) -> None:
        self.throttled.inc(seconds)

    def server_version(self, version: str) -> None:
        self.info.info({"version": __version__, "immich_version": version})

    # --- a run's end ----------------------------------------------------------------------------

    def record_run(self, report: Report, requests: int = 0, now: float | None = None) -> None:
        self._zero_last_run(report.libraries)
        stuck_in: dict[str, int] = {}
        for o in report.outcomes:
            if o.kind not in RUN_KINDS:
                continue
            self.last_assets.labels(o.library_id, o.kind.value, o.label).inc(o.assets)
            if stuck(o):
                stuck_in[o.library_id] = stuck_in.get(o.library_id, 0) + o.assets
        self.last_bytes.set(report.moved_bytes)
        self.last_duration.set(report.duration)
        self.last_throttled.set(report.throttled_seconds)
        self.waiting.set(report.assets(Kind.WAITING))
        self.http.set(requests)
        for library, left in report.remaining.items():
            shelf = self.libraries.setdefault(library, Shelf(report.library_names.get(library, library)))
            shelf.remaining, shelf.stuck = left, min(left, stuck_in.get(library, 0))
        result = "error" if report.server_failed else "partial" if report.failed else "success"
        self._ended(result, time.time() if now is None else now, moved=report.moved_assets > 0)

    def record_audit(self, report: Report, now: float | None = None) -> None:
        """A verify, undo or undo-plan ended: its counts per outcome replace the last one's."""
        for kind in Kind:
            self.audit.labels(report.command, kind.value).set(report.assets(kind))
        self.audit_time.labels(report.command).set(time.time() if now is None else now)

    def record_error(self, now: float | None = None) -> None:
        """A run that could not start: it moved nothing, and it failed. What it could not see (assets
        waiting, Immich's backlog) stays as last seen."""
        self._zero_last_run(self.libraries)
        for gauge in (self.last_bytes, self.last_duration, self.last_throttled, self.http):
            gauge.set(0)
        self._ended("error", time.time() if now is None else now, moved=False)

    def _zero_last_run(self, libraries: Iterable[str]) -> None:
        self.last_assets.clear()
        for library in libraries:
            for outcome in OUTCOMES:  # what the run did not do is a 0, not a gap
                self.last_assets.labels(library, outcome, "")

    def _ended(self, result: str, now: float, moved: bool) -> None:
        if self.last_run.value is not None:
            self.interval.value = now - self.last_run.value
        self.last_run.value = now
        if moved or self.last_progress.value is None:
            self.last_progress.value = now
        self.runs.labels(result).inc()
        if result == "success":
            self.last_success.value = now
            self.failing_since.value = 0.0
        elif not self.failing_since.value:
            self.failing_since.value = now

    # --- exposition -----------------------------------------------------------------------------

    def audit_registry(self) -> CollectorRegistry:
        """Only the last verify's and undo's gauges: what such a command pushes (the rest is the runs')."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Only([self.audit, self.audit_time]))
        return registry

    def serve(self, port: int, addr: str = "0.0.0.0"):
        return start_http_server(port, addr=addr, registry=self.exposed)

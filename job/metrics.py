"""Prometheus metrics: served on /metrics in service mode, pushed to a Pushgateway at the end of a
run-once run (Prometheus' advice for batch jobs). Prefix `ext2int_`, base units, `_total` counters.

Gauges named `ext2int_last_run_*` describe the most recent run; they mean the same in both modes, so
the Grafana dashboard works for a CronJob that pushes and for a service that is scraped.
"""

from __future__ import annotations

import threading
import time

from urllib.parse import unquote, urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, push_to_gateway, start_http_server
from prometheus_client.exposition import basic_auth_handler, default_handler

from job import __version__
from job.outcome import KINDS, Kind, Outcome
from job.report import Report

PREFIX = "ext2int"
OUTCOMES = tuple(k.value for k in Kind if k is not Kind.PLANNED)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.assets = Counter(f"{PREFIX}_assets", "Assets handled, by outcome (uploaded, merged, held, waiting, skipped, "
                              "failed) and reason (skip or hold reason, or failure stage).", ["library", "outcome", "reason"],
                              registry=r)
        self.bytes = Counter(f"{PREFIX}_bytes", "Bytes transferred from external to internal assets.", registry=r)
        self.remaining = Gauge(f"{PREFIX}_remaining_assets", "External assets left to move, per library.", ["library"], registry=r)
        self.steps = Histogram(f"{PREFIX}_step_duration_seconds", "Time spent in each step of a move.", ["step"],
                               buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800), registry=r)
        self.runs = Counter(f"{PREFIX}_runs", "Runs ended, by result (success, partial, error).", ["result"], registry=r)
        self.skipped_runs = Counter(f"{PREFIX}_skipped_runs", "Scheduled runs skipped because the previous one was still going.", registry=r)
        self.throttled = Counter(f"{PREFIX}_throttled_seconds", "Seconds paused because Immich's queues were too full.", registry=r)
        self.backlog = Gauge(f"{PREFIX}_immich_queue_backlog_jobs", "Jobs waiting or active in Immich's heavy queues, as last seen.", registry=r)
        self.http = Gauge(f"{PREFIX}_last_run_http_requests", "HTTP requests sent to Immich by the last run.", registry=r)
        self.last_run = Gauge(f"{PREFIX}_last_run_timestamp_seconds", "When the last run ended (Unix time).", registry=r)
        self.last_success = Gauge(f"{PREFIX}_last_success_timestamp_seconds", "When the last run without failures ended.", registry=r)
        self.last_duration = Gauge(f"{PREFIX}_last_run_duration_seconds", "Wall time of the last run.", registry=r)
        self.last_assets = Gauge(f"{PREFIX}_last_run_assets", "Assets per outcome in the last run.", ["outcome"], registry=r)
        self.last_bytes = Gauge(f"{PREFIX}_last_run_bytes", "Bytes moved by the last run.", registry=r)
        self.last_throttled = Gauge(f"{PREFIX}_last_run_throttled_seconds", "Seconds the last run was paused by back-pressure.", registry=r)
        self.waiting = Gauge(f"{PREFIX}_waiting_assets", "Assets copied but not yet deleted: waiting for Immich (faces, metadata).", registry=r)
        self.running = Gauge(f"{PREFIX}_run_in_progress", "1 while a run is going.", registry=r)
        self.info = Info(f"{PREFIX}_build", "Version of immich-ext2int and of the Immich server it talks to.", registry=r)
        self.info.info({"version": __version__, "immich_version": "unknown"})
        for outcome in OUTCOMES:
            self.last_assets.labels(outcome)
        self._lock = threading.Lock()

    # --- live hooks (called from worker threads) ------------------------------------------------

    def on_outcome(self, outcome: Outcome) -> None:
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

    def record_run(self, report: Report, requests: int = 0) -> None:
        counts = report.counts()
        for outcome in OUTCOMES:
            self.last_assets.labels(outcome).set(report.assets(Kind(outcome)))
        self.last_bytes.set(report.moved_bytes)
        self.last_duration.set(report.duration)
        self.last_throttled.set(report.throttled_seconds)
        self.waiting.set(report.assets(Kind.WAITING))
        self.http.set(requests)
        for library, left in report.remaining.items():
            self.remaining.labels(library).set(left)
        now = time.time()
        self.last_run.set(now)
        result = "error" if report.server_failed else "partial" if counts.get("failed") else "success"
        self.runs.labels(result).inc()
        if result == "success":
            self.last_success.set(now)

    def record_error(self) -> None:
        self.runs.labels("error").inc()
        self.last_run.set(time.time())

    # --- exposition -----------------------------------------------------------------------------

    def serve(self, port: int, addr: str = "0.0.0.0"):
        return start_http_server(port, addr=addr, registry=self.registry)

    def push(self, gateway: str) -> None:
        """One group for the job (a grouping label the metrics also carry, like `library`, makes the
        Pushgateway refuse the push). Credentials in the URL (https://user:password@host) are sent as
        HTTP basic auth, the way the URL says, and never shown."""
        parts = urlsplit(gateway)
        handler = default_handler
        if parts.username is not None:
            user, password = unquote(parts.username), unquote(parts.password or "")
            gateway = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))

            def handler(url, method, timeout, headers, data):  # noqa: ANN001 - prometheus_client's signature
                return basic_auth_handler(url, method, timeout, headers, data, user, password)

        push_to_gateway(gateway, job="immich-ext2int", registry=self.registry, timeout=10, handler=handler)

"""Run-once mode: the job's one group in a Pushgateway, which holds the totals between runs.

A run-once process starts from zero, but Grafana needs counters that only grow, as a service's do. So a
run first reads its group back (`Gateway.read`), adds its own counts to what the group held (`Exposed`),
and at its end replaces the group with the sums (PUT). Gauges that describe more than one run (when the
last success was, since when runs fail, each library's last counts) are carried the same way.

Two runs at once would each add to the same old totals and one run's counts would be lost: the CronJob
of the Helm chart never starts a second run while one is going (concurrencyPolicy: Forbid).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, pushadd_to_gateway
from prometheus_client.exposition import basic_auth_handler, default_handler
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from job.metrics.families import PREFIX

JOB = "immich-ext2int"

# Gauges a run-once run carries over from its group, besides the counters and histograms.
CARRIED_GAUGES = frozenset(f"{PREFIX}_{name}" for name in (
    "last_success_timestamp_seconds", "failing_since_timestamp_seconds", "last_run_timestamp_seconds",
    "last_progress_timestamp_seconds", "remaining_assets", "stuck_assets", "library_info", "waiting_assets",
    "immich_queue_backlog_jobs", "build_info", "audit_assets", "audit_timestamp_seconds",
))
COUNTING = ("counter", "histogram")

Key = tuple[str, tuple[tuple[str, str], ...]]  # a sample's name and sorted labels


def key(name: str, labels: dict[str, str]) -> Key:
    return name, tuple(sorted(labels.items()))


@dataclass
class Carried:
    """What the group held: counter and histogram samples (added to this run's), and CARRIED_GAUGES."""

    counters: dict[Key, float] = field(default_factory=dict)
    gauges: dict[Key, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, group: dict[str, str]) -> Carried:
        """The samples of one group out of the Pushgateway's /metrics, the group's labels taken off."""
        carried = cls()
        for family in text_string_to_metric_families(text):
            if not family.name.startswith(PREFIX + "_"):
                continue
            for s in family.samples:
                if any(s.labels.get(k) != v for k, v in group.items()):
                    continue
                # the Pushgateway adds instance="" to a group without one
                labels = {k: v for k, v in s.labels.items() if k not in group and k != "instance"}
                if family.type in COUNTING:
                    carried.counters[key(s.name, labels)] = s.value
                elif s.name in CARRIED_GAUGES:
                    carried.gauges[key(s.name, labels)] = s.value
        return carried

    def gauge(self, name: str, **labels: str) -> float | None:
        return self.gauges.get(key(name, labels))

    def labelled(self, name: str) -> Iterator[tuple[dict[str, str], float]]:
        for (sample, labels), value in self.gauges.items():
            if sample == name:
                yield dict(labels), value


class Exposed(Collector):
    """This process' samples with the carried ones: counters and histograms add up, the rest is this
    process' own."""

    def __init__(self, own: CollectorRegistry, carried: Carried):
        self.own, self.carried = own, carried

    def collect(self) -> Iterator[Metric]:
        left = dict(self.carried.counters)
        for family in self.own.collect():
            if family.type not in COUNTING:
                yield family
                continue
            out = Metric(family.name, family.documentation, family.type, family.unit)
            for s in family.samples:
                out.add_sample(s.name, s.labels, s.value + left.pop(key(s.name, s.labels), 0.0))
            for (name, labels), value in list(left.items()):  # carried series this process did not write
                if name.startswith(family.name) and name[len(family.name):] in ("_total", "_bucket", "_count", "_sum"):
                    out.add_sample(name, dict(labels), value)
                    del left[(name, labels)]
            yield out


class Gateway:
    """The job's one group (grouping key job=immich-ext2int and nothing else: a grouping label the
    metrics also carry, like `library`, makes the Pushgateway refuse the push). Credentials in the URL
    (https://user:password@host) are sent as HTTP basic auth and never shown: `url` is without them."""

    def __init__(self, url: str, timeout: float = 10):
        parts = urlsplit(url)
        self.auth: tuple[str, str] | None = None
        if parts.username is not None:
            self.auth = (unquote(parts.username), unquote(parts.password or ""))
            url = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
        self.url, self.timeout = url.rstrip("/"), timeout
        self.group = {"job": JOB}

    def read(self) -> Carried:
        response = requests.get(f"{self.url}/metrics", auth=self.auth, timeout=self.timeout)
        response.raise_for_status()
        return Carried.parse(response.text, self.group)

    def replace(self, registry: CollectorRegistry) -> None:
        """The whole group becomes `registry`'s samples (PUT)."""
        push_to_gateway(self.url, job=JOB, registry=registry, timeout=self.timeout, handler=self._handler())

    def add(self, registry: CollectorRegistry) -> None:
        """`registry`'s families replace their namesakes in the group; the rest stays as it is (POST)."""
        pushadd_to_gateway(self.url, job=JOB, registry=registry, timeout=self.timeout, handler=self._handler())

    def running(self) -> None:
        """A run started: `ext2int_run_in_progress 1`, the rest of the group as it is (POST)."""
        registry = CollectorRegistry()
        Gauge(f"{PREFIX}_run_in_progress", "1 while a run is going.", registry=registry).set(1)
        pushadd_to_gateway(self.url, job=JOB, registry=registry, timeout=self.timeout, handler=self._handler())

    def _handler(self):
        if self.auth is None:
            return default_handler
        user, password = self.auth

        def handler(url, method, timeout, headers, data):  # noqa: ANN001 - prometheus_client's signature
            return basic_auth_handler(url, method, timeout, headers, data, user, password)

        return handler

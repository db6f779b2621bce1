"""Metric families prometheus_client cannot express as we need them: gauges that are absent until they
are known (0 would be a lie: "last success 56 years ago"), and the per-library gauges of the libraries
the job moves now (a library taken out of EXT2INT_LIBRARY_IDS leaves the dashboard)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

PREFIX = "ext2int"


@dataclass
class Shelf:
    """What the dashboard knows of one library between runs."""

    name: str
    owner: str = ""
    remaining: float | None = None  # Immich's count of the library's external assets after the last run
    stuck: float | None = None  # of those, the ones the last run held or skipped for a lasting reason


class LibraryGauges(Collector):
    """ext2int_remaining_assets, ext2int_stuck_assets and ext2int_library_info, per library."""

    def __init__(self, libraries: dict[str, Shelf]):
        self.libraries = libraries

    def collect(self) -> Iterator[Metric]:
        remaining = Metric(f"{PREFIX}_remaining_assets", "External assets left in each library (Immich's count after "
                           "the last run; stuck assets included).", "gauge")
        stuck = Metric(f"{PREFIX}_stuck_assets", "Assets of each library the last run held or skipped for a lasting "
                       "reason: they stay until someone acts (a lower bound when the run stopped at a limit).", "gauge")
        info = Metric(f"{PREFIX}_library_info", "Each library's name and owner (value 1): to show names, not ids.", "gauge")
        for library, shelf in sorted(self.libraries.items()):
            info.add_sample(info.name, {"library": library, "name": shelf.name, "owner": shelf.owner}, 1)
            if shelf.remaining is not None:
                remaining.add_sample(remaining.name, {"library": library}, shelf.remaining)
            if shelf.stuck is not None:
                stuck.add_sample(stuck.name, {"library": library}, shelf.stuck)
        yield from (remaining, stuck, info)


@dataclass
class Moment:
    name: str
    documentation: str
    value: float | None = None


class Moments(Collector):
    """Gauges without labels that are exported only once they have a value."""

    def __init__(self, registry: CollectorRegistry):
        self.moments: list[Moment] = []
        registry.register(self)

    def add(self, name: str, documentation: str) -> Moment:
        self.moments.append(Moment(f"{PREFIX}_{name}", documentation))
        return self.moments[-1]

    def collect(self) -> Iterator[Metric]:
        for m in self.moments:
            if m.value is not None:
                family = Metric(m.name, m.documentation, "gauge")
                family.add_sample(m.name, {}, m.value)
                yield family


class _Only(Collector):
    """Some metrics of a registry, alone (what a command pushes without touching the rest of a group)."""

    def __init__(self, metrics: list):
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        for metric in self.metrics:
            yield from metric.collect()

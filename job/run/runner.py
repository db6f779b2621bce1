"""A run: list what is left, move units within the limits, and account for every listed asset.

Limits are soft (like rclone's --max-transfer with a soft cut-off): reaching one stops taking new units
and lets the ones in flight finish. Skipped and held units do not use up the batch: they would
otherwise stand in front of the rest of the library on every run.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from job.clock import SYSTEM, Clock
from job.decide import Action, Scope, decide, file_holds
from job.immich import errors
from job.immich.models import Library
from job.move import Mover
from job.move.context import Pending, RunContext, Unit
from job.move.gate import Gate
from job.outcome import Kind, Outcome, Stage
from job.report import Report
from job.run.flight import Flight
from job.run.listing import Listing, LiveIndex, page_size_for
from job.run.session import Session, refreshed
from job.settings import DeleteMode, QueueAction, Settings

log = logging.getLogger("ext2int")


@dataclass
class Observer:
    """Hooks for the edges (metrics, progress bar, logs). All optional; called from worker threads."""

    on_outcome: Callable[[Outcome], None] | None = None
    on_bytes: Callable[[int], None] | None = None
    on_step: Callable[[str, float], None] | None = None
    on_backlog: Callable[[int], None] | None = None
    on_throttle: Callable[[float], None] | None = None


class Runner:
    def __init__(self, session: Session, libraries: list[Library], settings: Settings, scope: Scope,
                 observer: Observer | None = None, clock: Clock = SYSTEM):
        self.session, self.libraries, self.settings, self.scope = session, libraries, settings, scope
        self.observer, self.clock = observer or Observer(), clock
        self.stop = threading.Event()  # soft: take no new units
        self.hard_stop = threading.Event()  # second signal: stop waiting for anything
        self.stop_reason = ""
        self.abandoned = False  # moves were still running when the shutdown grace ran out
        self._last_backlog_check: float | None = None
        self._backlog_disabled = False

    def request_stop(self, signal_name: str) -> None:
        """A signal: the first stops taking new units, a second stops waiting for anything."""
        if self.stop.is_set():
            self.hard_stop.set()
        self.stop_reason = self.stop_reason or f"stopped by {signal_name}"
        self.stop.set()

    def new_report(self, command: str) -> Report:
        return Report(command=command, server_version=str(self.session.caps.version),
                      delete_mode=self.settings.delete.value, libraries=[lib.id for lib in self.libraries],
                      library_names={lib.id: lib.name or lib.id for lib in self.libraries})

    # --- run ------------------------------------------------------------------------------------

    def run(self) -> Report:
        client, settings, clock = self.session.client, self.settings, self.clock
        report = self.new_report("run")
        report.run_id = str(uuid.uuid4())
        io = cf.ThreadPoolExecutor(max_workers=settings.pools.helpers, thread_name_prefix="io")
        ctx = RunContext(client=client, caps=self.session.caps, settings=settings, scope=self.scope,
                         run_id=report.run_id, clock=clock, shared_links=self._shared_link_map(),
                         memories=self.memory_map(report), hard_stop=self.hard_stop, on_bytes=self.observer.on_bytes,
                         on_step=self.observer.on_step, io=io, live_stills=LiveIndex(client))
        tally = _Tally()
        listed: set[str] = set()

        def account(outcome: Outcome) -> None:
            report.add(outcome)
            if outcome.stops_run and not self.stop.is_set():
                self.stop_reason = outcome.stops_run
                self.stop.set()
            if self.observer.on_outcome:
                self.observer.on_outcome(outcome)

        gate = Gate(ctx, account, scope=lambda: self._scope_now(ctx))

        def finished(result: Outcome | Pending) -> None:
            if isinstance(result, Pending):
                gate.submit(result)
            else:
                if result.kind in (Kind.SKIPPED, Kind.HELD):
                    tally.taken -= 1
                account(result)

        def transferred(outcome: Outcome) -> None:
            tally.bytes += outcome.bytes  # phase one ended: its bytes count toward EXT2INT_MAX_BYTES

        if settings.delete is DeleteMode.TRASH and not self.session.caps.trash:
            note = ("Immich's trash is turned off (Administration > Settings > Trash): EXT2INT_DELETE=trash gives no way "
                    "back, moved external assets and their files go for good at Immich's nightly check")
            report.notes.append(note)
            log.warning(note)
        started = clock.monotonic()
        report.stopped_because = self._wait_for_backlog(report)
        flight = Flight(Mover(ctx, gate), settings.pools, finished=finished, transferred=transferred)
        listing = Listing(client, self.libraries, page_size=page_size_for(settings.batch_size),
                          listed=lambda a: listed.add(a.id))
        try:
            try:
                for unit in listing.units() if not report.stopped_because else ():
                    quick = self.quick(unit, ctx.scope)
                    if quick is not None:
                        account(quick)  # never taken: it does not give back a place in the batch
                        continue
                    while not flight.has_room() and not self.stop.is_set():
                        flight.collect(timeout=0.5)
                    # after a slot freed: the unit that just ended may have stopped the run or hit a limit
                    reason = self._may_continue(tally, started, report)
                    if reason:
                        report.stopped_because = report.stopped_because or reason
                        report.at_limit = reason in self._limits(tally, started)
                        break
                    tally.taken += 1
                    flight.start(unit)
                    if not gate.worked and settings.delete is not DeleteMode.KEEP:
                        # until a first delete went through, a unit goes all the way alone: a permission
                        # refused at the end (servers without GET /api-keys/me) fails one unit, not a pipeline
                        while flight.active and not self.stop.is_set():
                            flight.collect(timeout=0.5)
                        gate.flush()  # (a signal meanwhile: the drain below applies the grace period)
                    flight.collect(timeout=0)
            except errors.ImmichError as exc:
                # Listing (or reading the queues) failed: what is in flight still finishes, and the report
                # says what was done before the run stops with exit code 3.
                report.stopped_because = f"Immich failed a call the whole run depends on: {exc}"
                report.server_failed = True
            self._drain(flight, finished)
        finally:
            flight.shutdown(wait=not self.hard_stop.is_set() and not self.stop.is_set())
            gate.close()  # what waits at the gate is released (a second signal never gets here: it exits)
            io.shutdown(wait=False)
        report.listed = len(listed)
        report.remaining = self.remaining()
        report.finish()
        return report

    def quick(self, unit: Unit, scope: Scope) -> Outcome | None:
        """Skips and holds decided from the listing alone cost no further request."""
        a = unit.asset
        decision = decide(a, scope=scope, delete_mode=self.settings.delete)
        if decision.action is not Action.SKIP:
            decision = file_holds(a.originalPath, a.libraryId, scope).hold or decision
        if decision.action is Action.SKIP:
            return Outcome(a.id, a.originalPath, a.libraryId or "", assets=unit.assets).skip(decision.skip)
        if decision.action is Action.HOLD:
            return Outcome(a.id, a.originalPath, a.libraryId or "", assets=unit.assets).hold(decision.hold, *decision.details)
        return None

    def _scope_now(self, ctx: RunContext) -> Scope:
        """The gate's view at the moment of deletion: the libraries as they are now."""
        ctx.scope = refreshed(ctx.scope, self.session)
        return ctx.scope

    def _may_continue(self, tally: _Tally, started: float, report: Report) -> str:
        if self.stop.is_set():
            return self.stop_reason or "stopped"
        limits = self._limits(tally, started)
        return limits[0] if limits else self._wait_for_backlog(report)

    def _limits(self, tally: _Tally, started: float) -> list[str]:
        """The run's limits that are reached: a normal end of a run, the next one goes on."""
        s, reached = self.settings, []
        if tally.taken >= s.batch_size:
            reached.append(f"EXT2INT_BATCH_SIZE ({s.batch_size}) reached")
        if s.max_bytes is not None and tally.bytes >= s.max_bytes:
            reached.append(f"EXT2INT_MAX_BYTES ({int(s.max_bytes)} bytes) reached")
        if s.max_duration is not None and self.clock.monotonic() - started >= s.max_duration:
            reached.append(f"EXT2INT_MAX_DURATION ({s.max_duration:.0f}s) reached")
        return reached

    def _drain(self, flight: Flight, finished: Callable[[Outcome | Pending], None]) -> None:
        """Let the units in flight finish: without limit normally, within EXT2INT_SHUTDOWN_GRACE after a
        signal. A unit cut off here is left in a state the next run completes."""
        deadline = None
        while flight.active:
            if self.stop.is_set() and deadline is None:
                deadline = self.clock.monotonic() + self.settings.shutdown_grace
            flight.collect(timeout=0.0 if self.hard_stop.is_set() else
                           1.0 if deadline is None else min(1.0, max(0.0, deadline - self.clock.monotonic())))
            if deadline is not None and (self.clock.monotonic() >= deadline or self.hard_stop.is_set()):
                self.abandoned = bool(flight.active)
                for unit in flight.abandon():
                    a = unit.asset
                    finished(Outcome(a.id, a.originalPath, a.libraryId or "", assets=unit.assets).fail(
                        Stage.INCOMPLETE, "interrupted by shutdown; the next run completes it"))

    # --- back-pressure --------------------------------------------------------------------------

    def _wait_for_backlog(self, report: Report) -> str:
        """Pause (or stop) while Immich's queues hold more than the threshold of waiting jobs."""
        s = self.settings
        if s.queue_threshold <= 0 or self._backlog_disabled:
            return ""
        if self._last_backlog_check is not None and self.clock.monotonic() - self._last_backlog_check < min(s.queue_poll, 2.0):
            return ""
        paused_since = None
        while True:
            self._last_backlog_check = self.clock.monotonic()
            try:
                backlog = self.session.client.queue_backlog().total
            except (errors.Forbidden, errors.PermissionMissing) as exc:
                self._backlog_disabled = True
                report.notes.append(f"back-pressure off: this key cannot read Immich's queues ({exc.call}: admin and "
                                    "job.read/queue.read needed)")
                return ""
            if self.observer.on_backlog:
                self.observer.on_backlog(backlog)
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
                return self.stop_reason or "stopped"
            step = min(s.queue_poll, s.queue_max_pause - waited)
            self.clock.sleep(step, until=self.stop)
            report.throttled_seconds += step
            if self.observer.on_throttle:
                self.observer.on_throttle(step)

    # --- run-level facts --------------------------------------------------------------------------

    def _shared_link_map(self) -> dict[str, frozenset[str]]:
        links: dict[str, set[str]] = {}
        for link in self.session.client.shared_links():
            if link.type.upper() == "INDIVIDUAL":
                for asset in link.assets:
                    links.setdefault(asset.id, set()).add(link.id)
        return {k: frozenset(v) for k, v in links.items()}

    def memory_map(self, report: Report) -> dict[str, int]:
        try:
            memories = self.session.client.memories()
        except (errors.Forbidden, errors.PermissionMissing):
            report.notes.append("memories not checked: the key lacks memory.read")
            return {}
        shown: dict[str, int] = {}
        for memory in memories:
            for asset in memory.assets:
                shown[asset.id] = shown.get(asset.id, 0) + 1
        return shown

    def remaining(self) -> dict[str, int]:
        """External assets left per library (what the progress line in Grafana shows)."""
        out = {}
        for library in self.libraries:
            try:
                out[library.id] = self.session.client.count_assets(library.id)
            except errors.ImmichError:
                continue
        return out


class _Tally:
    """What the run has taken so far (touched from the runner's thread only)."""

    def __init__(self) -> None:
        self.taken = 0  # units started that did not end skipped or held
        self.bytes = 0

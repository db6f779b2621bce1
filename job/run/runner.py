"""A run: list what is left, move units within the limits, and account for every listed asset.

A run acts for every user whose API key it holds (a family server: one key per user): each user's units are
moved with their own key, in turn with the others' (the batch is the run's, shared), and a file that
several of their libraries hold goes only with all its assets (see job/move/gate.py).

Limits are soft (like rclone's --max-transfer with a soft cut-off): reaching one stops taking new units
and lets the ones in flight finish. Skipped and held units do not use up the batch: they would
otherwise stand in front of the rest of the library on every run. The units the gate asks for (another
user's asset of a file already moved) are taken even past a limit: they finish what was started.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from job.clock import SYSTEM, Clock
from job.decide import Action, Scope, decide, file_holds
from job.immich import errors
from job.immich.models import Asset
from job.move import Mover, claim
from job.move.context import Pending, RunContext, Sources, TargetLocks, Unit
from job.move.gate import Gate
from job.outcome import Kind, Outcome, Stage
from job.report import Report
from job.run.crew import Crew, memory_map, remaining, shared_link_map
from job.run.flight import Flight
from job.run.listing import Feed, Listing, LiveIndex, page_size_for
from job.run.pressure import BackPressure
from job.settings import DeleteMode, Settings

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
    def __init__(self, crew: Crew, settings: Settings, observer: Observer | None = None, clock: Clock = SYSTEM):
        self.crew, self.settings = crew, settings
        self.observer, self.clock = observer or Observer(), clock
        self.stop = threading.Event()  # soft: take no new units
        self.hard_stop = threading.Event()  # second signal: stop waiting for anything
        self.stop_reason = ""
        self.abandoned = False  # moves were still running when the shutdown grace ran out
        self.pressure = BackPressure(crew.lead.client, settings, clock, self.stop, self.observer.on_backlog,
                                     self.observer.on_throttle)

    def request_stop(self, signal_name: str) -> None:
        """A signal: the first stops taking new units, a second stops waiting for anything."""
        if self.stop.is_set():
            self.hard_stop.set()
        self.stop_reason = self.stop_reason or f"stopped by {signal_name}"
        self.stop.set()

    def new_report(self, command: str) -> Report:
        libraries = self.crew.libraries
        return Report(command=command, server_version=str(self.crew.lead.caps.version),
                      delete_mode=self.settings.delete.value, libraries=[lib.id for lib in libraries],
                      library_names={lib.id: lib.name or lib.id for lib in libraries},
                      library_owners={lib.id: k.name for k in self.crew.keyholders for lib in k.libraries},
                      notes=list(self.crew.problems), key_problems=len(self.crew.problems))

    def contexts(self, run_id: str, report: Report, io: cf.ThreadPoolExecutor | None,
                 links: bool = True) -> dict[str, RunContext]:
        """Each user's context: their key's client and what the run knows of their assets (`links`: their
        shared links, which `plan` does not read)."""
        # one for all: asset ids are the server's; a lock for every stack; a lock per target
        sources, stacks, targets = Sources(), threading.Lock(), TargetLocks()
        ctxs = {k.user_id: RunContext(
            client=k.session.client, caps=k.session.caps, settings=self.settings, scope=k.scope, run_id=run_id,
            clock=self.clock, shared_links=shared_link_map(k.session.client) if links else {}, memories=memory_map(k.session.client, report),
            hard_stop=self.hard_stop, stack_lock=stacks, on_bytes=self.observer.on_bytes, on_step=self.observer.on_step,
            io=io, sources=sources, targets=targets, live_stills=LiveIndex(k.session.client))
            for k in self.crew.keyholders}
        for user, ctx in ctxs.items():
            ctx.peers = {other: c.client for other, c in ctxs.items() if other != user}
        return ctxs

    def listings(self, page_size: int, listed: Callable[[Asset], None] | None, seen: set[str]) -> list[Listing]:
        return [Listing(k.session.client, k.libraries, page_size=page_size, listed=listed, user=k.user_id, seen=seen)
                for k in self.crew.keyholders if k.libraries]

    # --- run ------------------------------------------------------------------------------------

    def run(self) -> Report:
        settings, clock = self.settings, self.clock
        report = self.new_report("run")
        report.run_id = str(uuid.uuid4())
        io = cf.ThreadPoolExecutor(max_workers=settings.pools.helpers, thread_name_prefix="io")
        ctxs = self.contexts(report.run_id, report, io)
        tally = _Tally()
        listed: set[str] = set()
        seen: set[str] = set()
        feed = Feed(self.listings(page_size_for(settings.batch_size), lambda a: listed.add(a.id), seen), seen)

        def account(outcome: Outcome) -> None:
            report.add(outcome)
            if outcome.stops_run and not self.stop.is_set():
                self.stop_reason = outcome.stops_run
                self.stop.set()
            if self.observer.on_outcome:
                self.observer.on_outcome(outcome)

        gate = Gate(ctxs, account, scopes=lambda: self._scopes_now(ctxs), want=lambda user, asset: self._want(
            feed, ctxs[user], asset))

        def finished(result: Outcome | Pending) -> None:
            if isinstance(result, Pending):
                gate.submit(result)
            else:
                if result.kind in (Kind.SKIPPED, Kind.HELD):
                    tally.taken -= 1
                account(result)

        def transferred(outcome: Outcome) -> None:
            tally.bytes += outcome.bytes  # phase one ended: its bytes count toward EXT2INT_MAX_BYTES

        def offer(unit: Unit) -> bool:
            """Must `unit` be taken? (No: it is skipped or held from the listing alone, accounted now.)"""
            quick = self.quick(unit, ctxs[unit.user].scope)
            if quick is not None:
                account(quick)  # never taken: it does not give back a place in the batch
            return quick is None

        def take(unit: Unit) -> None:
            tally.taken += 1
            flight.start(unit)

        if settings.delete is DeleteMode.TRASH and not self.crew.lead.caps.trash:
            note = ("Immich's trash is turned off (Administration > Settings > Trash): EXT2INT_DELETE=trash gives no way "
                    "back, moved external assets and their files go for good at Immich's nightly check")
            report.notes.append(note)
            log.warning(note)
        started = clock.monotonic()
        report.stopped_because = self.pressure.wait(report, lambda: self.stop_reason)
        movers = {user: Mover(ctx, gate) for user, ctx in ctxs.items()}
        flight = Flight(lambda unit: movers[unit.user], settings.pools, finished=finished, transferred=transferred)
        try:
            try:
                for unit, asked in feed if not report.stopped_because else ():
                    if not offer(unit):
                        continue
                    while not flight.has_room() and not self.stop.is_set():
                        flight.collect(timeout=0.5)
                    # after a slot freed: the unit that just ended may have stopped the run or hit a limit
                    reason = self._may_continue(tally, started, report, asked)
                    if reason:
                        report.stopped_because = report.stopped_because or reason
                        report.at_limit = reason in self._limits(tally, started)
                        break
                    take(unit)
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
            self._drain(flight, finished, gate, feed, lambda unit: offer(unit) and take(unit))
        finally:
            flight.shutdown(wait=not self.hard_stop.is_set() and not self.stop.is_set())
            gate.close()  # what waits at the gate is released (a second signal never gets here: it exits)
            io.shutdown(wait=False)
            self._release_left(ctxs, report)
        report.listed = len(listed)
        report.remaining = self.remaining()
        report.finish()
        return report

    def _release_left(self, ctxs: dict[str, RunContext], report: Report) -> None:
        """However the run ends: the claims of ended units that Immich did not take back then (it was
        down, or failed the request) are released now, if it answers; else they expire by themselves."""
        left = sum(claim.release_left(ctx) for ctx in ctxs.values())
        if left:
            note = (f"{left} unit(s) keep their claim: Immich did not answer when they ended nor when the run ended; "
                    f"other runs take them once the claim expires (EXT2INT_CLAIM_TTL)")
            report.notes.append(note)
            log.warning(note)

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

    def remaining(self) -> dict[str, int]:
        """External assets left per library (what the progress line in Grafana shows)."""
        return {library: n for k in self.crew.keyholders for library, n in remaining(k.session.client, k.libraries).items()}

    def _want(self, feed: Feed, ctx: RunContext, asset: Asset) -> None:
        """The gate asks for another user's asset of a file it is about to let go: a still (with its
        video) or a photo is a unit; a live photo's video half comes with its still."""
        user = ctx.scope.user_id
        if asset.type == "VIDEO" and asset.visibility == "hidden":
            for still in (ctx.live_stills() if ctx.live_stills else {}).get(asset.id, []):
                if still.libraryId in ctx.scope.selected and not still.isTrashed:
                    feed.want(Unit(still, still.livePhotoVideoId, user))
            return
        feed.want(Unit(asset, asset.livePhotoVideoId, user))

    def _scopes_now(self, ctxs: dict[str, RunContext]) -> dict[str, Scope]:
        """The gate's view at the moment of deletion: the libraries as they are now."""
        for user, scope in self.crew.refreshed().items():
            ctxs[user].scope = replace(scope, media_root=ctxs[user].scope.media_root)
        return {user: ctx.scope for user, ctx in ctxs.items()}

    def _may_continue(self, tally: _Tally, started: float, report: Report, asked: bool) -> str:
        if self.stop.is_set():
            return self.stop_reason or "stopped"
        if asked:  # the gate waits for it: it finishes what was started
            return ""
        limits = self._limits(tally, started)
        return limits[0] if limits else self.pressure.wait(report, lambda: self.stop_reason)

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

    def _drain(self, flight: Flight, finished: Callable[[Outcome | Pending], None], gate: Gate, feed: Feed,
               start: Callable[[Unit], object]) -> None:
        """Let the units in flight finish (and take those the gate asks for): without limit normally,
        within EXT2INT_SHUTDOWN_GRACE after a signal. A unit cut off here is left in a state the next run
        completes."""
        deadline = None
        while True:
            while flight.active or (feed.has_wanted() and not self.stop.is_set()):
                while not self.stop.is_set() and flight.has_room() and feed.has_wanted():
                    start(feed.wanted())
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
                    return
            if self.stop.is_set():
                return
            gate.flush()  # judge what waits at the gate now: a unit may ask for another user's asset of its file
            if not feed.has_wanted():
                return


class _Tally:
    """What the run has taken so far (touched from the runner's thread only)."""

    def __init__(self) -> None:
        self.taken = 0  # units started that did not end skipped or held
        self.bytes = 0

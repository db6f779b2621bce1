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
from dataclasses import replace

from job.commands import Command
from job.clock import SYSTEM, Clock
from job.decide import Action, Scope, decide, file_holds
from job.immich import errors
from job.immich.models import Asset
from job.move import Mover, claim
from job.move.context import Pending, RunContext, Sources, TargetLocks, Unit
from job.move.held import Held, renewing
from job.move.gate import Gate
from job.outcome import Outcome, Stage
from job.report import Report
from job.run.crew import Crew, memory_map, remaining, shared_link_map
from job.run.flight import Flight
from job.run.recorder import Observer, Recorder
from job.run.watch import watch_trash
from job.run.listing import Feed, Listing, LiveIndex, page_size_for
from job.run.pressure import BackPressure
from job.settings import DeleteMode, Settings

log = logging.getLogger("ext2int")


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

    def new_report(self, command: Command) -> Report:
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
        sources, stacks, targets, held = Sources(), threading.Lock(), TargetLocks(), Held()
        ctxs = {k.user_id: RunContext(
            client=k.session.client, caps=k.session.caps, settings=self.settings, scope=k.scope, run_id=run_id,
            clock=self.clock, shared_links=shared_link_map(k.session.client) if links else {}, memories=memory_map(k.session.client, report),
            hard_stop=self.hard_stop, stack_lock=stacks, on_bytes=self.observer.on_bytes, on_step=self.observer.on_step,
            io=io, sources=sources, targets=targets, held=held, live_stills=LiveIndex(k.session.client))
            for k in self.crew.keyholders}
        for user, ctx in ctxs.items():
            ctx.peers = {other: c.client for other, c in ctxs.items() if other != user}
        return ctxs

    def listings(self, page_size: int, listed: Callable[[Asset], None] | None, seen: set[str],
                 ctxs: dict[str, RunContext] | None = None) -> list[Listing]:
        """`ctxs`: the run's contexts, whose albums' marks are read before each page of assets in no album
        (`plan` has none)."""
        return [Listing(k.session.client, k.libraries, page_size=page_size, listed=listed, user=k.user_id, seen=seen,
                        marks=(lambda c=ctxs[k.user_id]: c.album_marks.read(c.client)) if ctxs else None,
                        whole=k.session.caps.listed_record, clock=self.clock)
                for k in self.crew.keyholders if k.libraries]

    # --- run ------------------------------------------------------------------------------------

    def run(self) -> Report:
        """One batch: take units from the listings, move them, account for each (see _Batch)."""
        settings = self.settings
        report = self.new_report(Command.RUN)
        report.run_id = str(uuid.uuid4())
        if settings.delete is DeleteMode.TRASH and not self.crew.lead.caps.trash:
            note = ("Immich's trash is turned off (Administration > Settings > Trash): EXT2INT_DELETE=trash gives no way "
                    "back, moved external assets and their files go for good at Immich's nightly check")
            report.notes.append(note)
            log.warning(note)
        io = cf.ThreadPoolExecutor(max_workers=settings.pools.helpers, thread_name_prefix="io")
        batch = _Batch(self, report, self.contexts(report.run_id, report, io))
        report.stopped_because = self.pressure.wait(report, lambda: self.stop_reason)
        with renewing(batch.ctxs):  # the claims of units in flight stay alive; a dead run's expire in minutes
            try:
                if not report.stopped_because:
                    watch_trash(self.crew.keyholders, batch.ctxs, settings, report, restore=True)  # first: see watch.py
                    batch.take_units()
                self._drain(batch.flight, batch.finished, batch.gate, batch.feed, batch.start)
            finally:
                batch.flight.shutdown(wait=not self.hard_stop.is_set() and not self.stop.is_set())
                batch.gate.close()  # what waits at the gate is released (a second signal never gets here: it exits)
                io.shutdown(wait=False)
                self._release_left(batch.ctxs, report)
        report.claim_renewals = next(iter(batch.ctxs.values())).held.renewals if batch.ctxs else 0
        report.listed = len(batch.listed)
        report.remaining = self.remaining()
        report.finish()
        return report

    def halt(self, reason: str) -> None:
        """Take no new unit: `reason` (a failure every unit would meet) says why."""
        if not self.stop.is_set():
            self.stop_reason = self.stop_reason or reason
            self.stop.set()

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
        return decision.end(unit.outcome()) if decision.action in (Action.SKIP, Action.HOLD) else None

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

    def _may_continue(self, batch: _Batch, report: Report, asked: bool) -> str:
        if self.stop.is_set():
            return self.stop_reason or "stopped"
        if asked:  # the gate waits for it: it finishes what was started
            return ""
        limits = self._limits(batch)
        return limits[0] if limits else self.pressure.wait(report, lambda: self.stop_reason)

    def _limits(self, batch: _Batch) -> list[str]:
        """The run's limits that are reached: a normal end of a run, the next one goes on."""
        s, reached = self.settings, []
        if batch.taken >= s.batch_size:
            reached.append(f"EXT2INT_BATCH_SIZE ({s.batch_size}) reached")
        if s.max_bytes is not None and batch.bytes >= s.max_bytes:
            reached.append(f"EXT2INT_MAX_BYTES ({int(s.max_bytes)} bytes) reached")
        if s.max_duration is not None and self.clock.monotonic() - batch.started >= s.max_duration:
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
                        finished(unit.outcome().fail(Stage.INCOMPLETE, "interrupted by shutdown; the next run completes it"))
                    return
            if self.stop.is_set():
                return
            gate.flush()  # judge what waits at the gate now: a unit may ask for another user's asset of its file
            if not feed.has_wanted():
                return


class _Batch:
    """One run's units, in the order they happen: offered from the listing (skipped or held at once from
    it, or taken), moved in flight, judged at the gate, recorded once (job/run/recorder.py)."""

    def __init__(self, runner: Runner, report: Report, ctxs: dict[str, RunContext]):
        self.runner, self.report, self.ctxs = runner, report, ctxs
        self.record = Recorder(report, runner.observer, runner.halt)
        self.taken = 0  # units started that did not end skipped or held (what the batch size counts)
        self.bytes = 0  # bytes of units whose transfer ended (what EXT2INT_MAX_BYTES counts)
        self.listed: set[str] = set()
        seen: set[str] = set()
        self.feed = Feed(runner.listings(page_size_for(runner.settings.batch_size), lambda a: self.listed.add(a.id),
                                         seen, ctxs), seen)
        self.gate = Gate(ctxs, self.record, scopes=lambda: runner._scopes_now(ctxs),
                         want=lambda user, asset: runner._want(self.feed, ctxs[user], asset))
        movers = {user: Mover(ctx, self.gate) for user, ctx in ctxs.items()}
        self.flight = Flight(lambda unit: movers[unit.user], runner.settings.pools, finished=self.finished,
                             transferred=self.transferred)
        self.started = runner.clock.monotonic()

    def take_units(self) -> None:
        """Take units from the listings until a limit, a stop or the end of the listings."""
        runner, report, flight = self.runner, self.report, self.flight
        try:
            for unit, asked in self.feed:
                if not self.offer(unit):
                    continue
                while not flight.has_room() and not runner.stop.is_set():
                    flight.collect(timeout=0.5)
                # after a slot freed: the unit that just ended may have stopped the run or hit a limit
                reason = runner._may_continue(self, report, asked)
                if reason:
                    report.stopped_because = report.stopped_because or reason
                    report.at_limit = reason in runner._limits(self)
                    return
                self.take(unit)
                if not self.gate.worked and runner.settings.delete is not DeleteMode.KEEP:
                    # until a first delete went through, a unit goes all the way alone: a permission
                    # refused at the end (servers without GET /api-keys/me) fails one unit, not a pipeline
                    while flight.active and not runner.stop.is_set():
                        flight.collect(timeout=0.5)
                    self.gate.flush()  # (a signal meanwhile: the drain applies the grace period)
                flight.collect(timeout=0)
        except errors.ImmichError as exc:
            # Listing (or reading the queues) failed: what is in flight still finishes, and the report
            # says what was done before the run stops with exit code 3.
            report.stopped_because = f"Immich failed a call the whole run depends on: {exc}"
            report.server_failed = True

    def offer(self, unit: Unit) -> bool:
        """Must `unit` be taken? (No: it is skipped or held from the listing alone, recorded now; it never
        took a place in the batch.)"""
        quick = self.runner.quick(unit, self.ctxs[unit.user].scope)
        if quick is not None:
            self.record(quick)
        return quick is None

    def take(self, unit: Unit) -> None:
        self.taken += 1
        self.flight.start(unit)

    def start(self, unit: Unit) -> None:
        """A unit the gate asked for: taken unless the listing alone ends it."""
        if self.offer(unit):
            self.take(unit)

    def finished(self, result: Outcome | Pending) -> None:
        if isinstance(result, Pending):
            self.gate.submit(result)
            return
        if not result.info.counts:
            self.taken -= 1  # a skipped or held unit gives its place in the batch back
        self.record(result)

    def transferred(self, outcome: Outcome) -> None:
        self.bytes += outcome.bytes  # phase one ended: its bytes count toward EXT2INT_MAX_BYTES

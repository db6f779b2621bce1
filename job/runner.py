"""A run: connect, pick the libraries, list what is left, move units within the limits, and account
for every listed asset in the report.

Listing never pages past what it has not re-listed: moved assets vanish from Immich's search, so after
the first candidates are used up the library is listed again from page 1, skipping ids already handled.
Limits are soft (like rclone's --max-transfer with a soft cut-off): reaching one stops taking new
units and lets the ones in flight finish.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from job.immich import errors
from job.immich.client import MIN_VERSION, Capabilities, ImmichClient
from job.immich.models import Asset, Library, User
from job.move import Mover, Pending, RunContext, Unit
from job.plan import decide
from job.report import Outcome, Report

log = logging.getLogger("ext2int")


class ConfigurationError(Exception):
    """The settings name something that cannot be migrated (exit code 2)."""


@dataclass
class Limits:
    batch_size: int = 100
    max_bytes: int | None = None
    max_duration: float | None = None
    concurrency: int = 2


@dataclass
class Throttle:
    threshold: int = 500  # 0 disables back-pressure
    action: str = "pause"  # or "stop"
    max_pause: float = 600.0
    poll: float = 10.0


@dataclass
class Observer:
    """Hooks for the edges (metrics, progress bar, logs). All optional; called from worker threads."""

    on_outcome: Callable[[Outcome], None] | None = None
    on_bytes: Callable[[int], None] | None = None
    on_step: Callable[[str, float], None] | None = None
    on_backlog: Callable[[int], None] | None = None
    on_throttle: Callable[[float], None] | None = None
    on_start: Callable[[int], None] | None = None  # units planned for this run, when known


@dataclass
class Session:
    """What `connect` learned: the client and the server's shape."""

    client: ImmichClient
    caps: Capabilities
    user: User


def connect(client: ImmichClient) -> Session:
    version = client.server_version()
    if version.tuple < MIN_VERSION:
        raise errors.TooOld(
            "GET /api/server/version",
            f"Immich {version} is older than 2.0, which this job needs (asset metadata, stable API); upgrade Immich first",
        )
    features = client.server_features()
    user = client.me()
    return Session(client, Capabilities.of(version, features), user)


def required_permissions(caps: Capabilities, command: str, delete_mode: str) -> list[str]:
    """What the API key must allow for `command` on this server (see README, "The API key")."""
    if command != "run":
        return ["user.read", "asset.read", "album.read"]
    needed = ["user.read", "asset.read", "asset.download", "asset.upload", "asset.update", "album.read", "album.update",
              "tag.asset", "stack.read", "stack.update", "face.read", "face.create", "person.read", "person.create",
              "person.update", "sharedLink.read"]
    needed += ["asset.copy"] if caps.copy else ["albumAsset.create", "sharedLink.update", "stack.create"]
    if caps.edits:
        needed += ["asset.edit.get", "asset.edit.create"]
    if delete_mode != "keep":
        needed.append("asset.delete")
    return needed


def check_permissions(session: Session, command: str, delete_mode: str) -> None:
    """Refuse before changing anything when the key lacks a permission the move needs. GET /api-keys/me
    needs no permission itself; a server or session without it skips the check (calls then fail one
    by one, naming the permission)."""
    try:
        data = session.client.t.json("GET", "/api-keys/me")
    except (errors.NotFound, errors.Forbidden, errors.BadRequest):
        return
    granted = set(data.get("permissions", [])) if isinstance(data, dict) else set()
    if "all" in granted:
        return
    missing = [p for p in required_permissions(session.caps, command, delete_mode) if p not in granted]
    if missing:
        raise errors.PermissionMissing("GET /api/api-keys/me", ", ".join(missing))


def resolve_libraries(session: Session, configured: list[str]) -> list[Library]:
    """The external libraries to migrate. Refuses one owned by another user: its photos would be
    uploaded as the key's user's (never hand photos to the wrong person)."""
    client, me = session.client, session.user
    try:
        visible = client.libraries()
        admin = True
    except errors.Forbidden:
        visible, admin = [], False  # library endpoints are admin-only; fall back to the user's own assets
    if not configured:
        if admin:
            return [lib for lib in visible if lib.ownerId == me.id]
        return _discover_own_libraries(client, me)
    chosen = []
    for library_id in configured:
        if admin:
            try:
                library = client.library(library_id)
            except errors.NotFound:
                raise ConfigurationError(
                    f"EXT2INT_LIBRARY_IDS: library {library_id} does not exist on this server; run `ext2int libraries` to list them"
                ) from None
        else:
            page = client.search_assets(libraryId=library_id, size=1, with_exif=False)
            owner = page.items[0].ownerId if page.items else me.id
            library = Library(id=library_id, ownerId=owner, name=library_id)
        if library.ownerId != me.id:
            raise ConfigurationError(
                f"EXT2INT_LIBRARY_IDS: library {library.name or library_id} belongs to another user "
                f"({library.ownerId}); moving it with this key would give their photos to {me.email or me.id}. "
                "Run ext2int with an API key of the library's owner"
            )
        chosen.append(library)
    return chosen


def _discover_own_libraries(client: ImmichClient, me: User) -> list[Library]:
    ids: dict[str, None] = {}
    for asset in client.iter_assets(with_exif=False, withDeleted=False):
        if asset.libraryId and asset.ownerId == me.id:
            ids.setdefault(asset.libraryId)
    return [Library(id=i, ownerId=me.id, name=i) for i in ids]


# --- listing -----------------------------------------------------------------------------------


def page_size_for(batch: int) -> int:
    return max(100, min(1000, batch * 2))


def list_units(client: ImmichClient, library_id: str, *, page_size: int, seen: set[str],
               listed: Callable[[Asset], None] | None = None) -> Iterator[Unit]:
    """Units of one library in Immich's order, never one whose id is in `seen` (it is added when
    yielded). Each pass lists from page 1; a pass that yields nothing ends the listing."""
    while True:
        yielded = False
        stills_with_video: set[str] = set()
        hidden_videos: list[Asset] = []
        for asset in client.iter_assets(size=page_size, libraryId=library_id, with_exif=True):
            if listed:
                listed(asset)
            if asset.livePhotoVideoId:
                stills_with_video.add(asset.livePhotoVideoId)
            if asset.type == "VIDEO" and asset.visibility == "hidden":
                hidden_videos.append(asset)  # a live photo's video half: it moves with its still
                continue
            if asset.id in seen:
                continue
            seen.add(asset.id)
            if asset.livePhotoVideoId:
                seen.add(asset.livePhotoVideoId)
            yielded = True
            yield Unit(asset, asset.livePhotoVideoId)
        # The listing reached its end: video halves that no listed still points at move alone.
        for video in hidden_videos:
            if video.id not in stills_with_video and video.id not in seen:
                seen.add(video.id)
                yielded = True
                yield Unit(video)
        if not yielded:
            return


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Runner:
    session: Session
    libraries: list[Library]
    delete_mode: str = "trash"
    limits: Limits = field(default_factory=Limits)
    throttle: Throttle = field(default_factory=Throttle)
    settle_timeout: float = 60.0
    settle_confirm: float = 5.0
    face_wait: float = 6 * 3600.0
    shutdown_grace: float = 25.0
    transfer_retries: int = 5
    observer: Observer = field(default_factory=Observer)
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        self.stop = threading.Event()  # soft: take no new units
        self.hard_stop = threading.Event()  # second signal: stop waiting for anything
        self.stop_reason = ""
        self._last_backlog_check = 0.0
        self._backlog_disabled = False
        self.abandoned = False  # moves were still running when the shutdown grace ran out

    def request_stop(self, signal_name: str) -> None:
        """A signal: the first stops taking new units, a second stops waiting for anything."""
        if self.stop.is_set():
            self.hard_stop.set()
        self.stop_reason = self.stop_reason or f"stopped by {signal_name}"
        self.stop.set()

    # --- run ------------------------------------------------------------------------------------

    def run(self) -> Report:
        client = self.session.client
        report = self._new_report("run")
        ctx = RunContext(
            client=client, caps=self.session.caps, user_id=self.session.user.id, delete_mode=self.delete_mode,
            settle_timeout=self.settle_timeout, settle_confirm=self.settle_confirm, face_wait=self.face_wait, hard_stop=self.hard_stop,
            transfer_retries=self.transfer_retries,
            on_bytes=self.observer.on_bytes, on_step=self.observer.on_step, sleep=self._move_sleep,
            shared_links=self._shared_link_map(), memories=self._memory_map(report), defer_delete=True,
        )
        io_pool = cf.ThreadPoolExecutor(max_workers=self.limits.concurrency * 3, thread_name_prefix="io")
        ctx.io = io_pool
        mover = Mover(ctx)
        started = time.monotonic()
        lock = threading.Lock()
        taken = 0  # units started that did not end as skipped
        done_bytes = 0

        def account(outcome: Outcome) -> None:
            report.add(outcome)
            if outcome.stops_run and not self.stop.is_set():
                self.stop_reason = outcome.stops_run
                self.stop.set()
            if self.observer.on_outcome:
                self.observer.on_outcome(outcome)

        deletes = DeleteBatch(client, force=self.delete_mode == "force", account=account)

        def transferred(outcome: Outcome) -> None:
            """Phase one of a unit ended: its bytes count toward EXT2INT_MAX_BYTES from now on."""
            nonlocal done_bytes
            with lock:
                done_bytes += outcome.bytes

        def finished(outcome: Outcome) -> None:
            nonlocal taken
            with lock:
                if outcome.kind == "skipped":
                    taken -= 1
            if outcome.pending_delete:
                deletes.add(outcome)
            else:
                account(outcome)
            deletes.flush_if_due()

        def limit_reached() -> str:
            if taken >= self.limits.batch_size:
                return f"EXT2INT_BATCH_SIZE ({self.limits.batch_size}) reached"
            if self.limits.max_bytes is not None and done_bytes >= self.limits.max_bytes:
                return f"EXT2INT_MAX_BYTES ({self.limits.max_bytes} bytes) reached"
            if self.limits.max_duration is not None and time.monotonic() - started >= self.limits.max_duration:
                return f"EXT2INT_MAX_DURATION ({self.limits.max_duration:.0f}s) reached"
            return ""

        listed: set[str] = set()

        def count_listed(asset: Asset) -> None:
            listed.add(asset.id)

        report.stopped_because = self._wait_for_backlog(report)
        flight = Flight(mover, self.limits.concurrency, finished, transferred)
        try:
            try:
                seen: set[str] = set()
                for library in self.libraries if not report.stopped_because else []:
                    units = list_units(client, library.id, page_size=page_size_for(self.limits.batch_size), seen=seen,
                                       listed=count_listed)
                    for unit in units:
                        quick = self._quick_skip(unit)
                        if quick is not None:
                            finished(quick)
                            continue
                        while not flight.has_room() and not self.stop.is_set():
                            flight.collect(timeout=0.5)
                        reason = self._may_continue(limit_reached, report)  # after a slot freed: the
                        if reason:  # unit that just ended may have stopped the run or reached a limit
                            report.stopped_because = report.stopped_because or reason
                            break
                        with lock:
                            taken += 1
                        flight.start(unit)
                        flight.collect(timeout=0)
                    if report.stopped_because:
                        break
            except errors.ImmichError as exc:
                # Listing (or reading the queues) failed: what is in flight still finishes, and the
                # report says what was done before the run stops with exit code 3.
                report.stopped_because = f"Immich failed a call the whole run depends on: {exc}"
                report.server_failed = True
            self._drain(flight, finished)
        finally:
            flight.shutdown(wait=not self.hard_stop.is_set() and not self.stop.is_set())
            io_pool.shutdown(wait=False)
            if not self.hard_stop.is_set():
                deletes.flush()
        report.listed = len(listed)
        report.remaining = self.remaining()
        report.finish()
        return report

    def _may_continue(self, limit_reached: Callable[[], str], report: Report) -> str:
        if self.stop.is_set():
            return self.stop_reason or "stopped"
        reason = limit_reached()
        if reason:
            return reason
        return self._wait_for_backlog(report)

    def _quick_skip(self, unit: Unit) -> Outcome | None:
        """Skips decided from the listing alone cost no further request."""
        decision = decide(unit.asset, user_id=self.session.user.id, delete_mode=self.delete_mode)
        if decision.action != "skip":
            return None
        a = unit.asset
        return Outcome(a.id, a.originalPath, a.libraryId or "", "skipped", reason=decision.reason, assets=unit.assets)

    def _drain(self, flight: Flight, finished: Callable[[Outcome], None]) -> None:
        """Let the units in flight finish: without limit normally, within EXT2INT_SHUTDOWN_GRACE after a
        signal. A unit cut off here is left in a state the next run completes."""
        deadline = None
        while flight.active:
            if self.stop.is_set() and deadline is None:
                deadline = time.monotonic() + self.shutdown_grace
            flight.collect(timeout=0.0 if self.hard_stop.is_set() else
                           1.0 if deadline is None else min(1.0, max(0.0, deadline - time.monotonic())))
            if deadline is not None and (time.monotonic() >= deadline or self.hard_stop.is_set()):
                self.abandoned = bool(flight.active)
                for unit in flight.abandon():
                    a = unit.asset
                    finished(Outcome(a.id, a.originalPath, a.libraryId or "", "failed", stage="incomplete",
                                     reason="interrupted by shutdown; the next run completes it", assets=unit.assets))

    # --- back-pressure --------------------------------------------------------------------------

    def _wait_for_backlog(self, report: Report) -> str:
        """Pause (or stop) while Immich's queues hold more than the threshold of waiting jobs."""
        if self.throttle.threshold <= 0 or self._backlog_disabled:
            return ""
        now = time.monotonic()
        if now - self._last_backlog_check < min(self.throttle.poll, 2.0) and self._last_backlog_check:
            return ""
        paused_since = None
        while True:
            self._last_backlog_check = time.monotonic()
            try:
                backlog = self.session.client.queue_backlog().total
            except (errors.Forbidden, errors.PermissionMissing) as exc:
                self._backlog_disabled = True
                report.notes.append(f"back-pressure off: this key cannot read Immich's queues ({exc.call}: admin and "
                                    "job.read/queue.read needed)")
                return ""
            if self.observer.on_backlog:
                self.observer.on_backlog(backlog)
            if backlog <= self.throttle.threshold:
                return ""
            if self.throttle.action == "stop":
                return f"Immich's queues hold {backlog} jobs (EXT2INT_QUEUE_THRESHOLD={self.throttle.threshold})"
            if paused_since is None:
                paused_since = time.monotonic()
                log.info("throttled: Immich's queues hold %d jobs, above %d; pausing", backlog, self.throttle.threshold)
            waited = time.monotonic() - paused_since
            if waited >= self.throttle.max_pause:
                return f"Immich's queues stayed above {self.throttle.threshold} jobs for {waited:.0f}s"
            if self.stop.is_set():
                return self.stop_reason or "stopped"
            step = min(self.throttle.poll, self.throttle.max_pause - waited)
            self._sleep(step)
            report.throttled_seconds += step
            if self.observer.on_throttle:
                self.observer.on_throttle(step)

    def _sleep(self, seconds: float) -> None:
        """The runner's pauses end at once on a stop request."""
        if seconds <= 0:
            return
        if self.sleep is time.sleep:
            self.stop.wait(seconds)
        else:
            self.sleep(seconds)

    def _move_sleep(self, seconds: float) -> None:
        """A move in flight keeps waiting for Immich after a first signal; only a second one cuts it."""
        if self.sleep is time.sleep:
            self.hard_stop.wait(seconds)
        else:
            self.sleep(seconds)

    # --- run-level facts --------------------------------------------------------------------------

    def _shared_link_map(self) -> dict[str, frozenset[str]]:
        links: dict[str, set[str]] = {}
        for link in self.session.client.shared_links():
            if link.type.upper() == "INDIVIDUAL":
                for asset in link.assets:
                    links.setdefault(asset.id, set()).add(link.id)
        return {k: frozenset(v) for k, v in links.items()}

    def _memory_map(self, report: Report) -> dict[str, int]:
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
                out[library.id] = self.session.client.count_assets(libraryId=library.id)
            except errors.ImmichError:
                continue
        return out

    def _new_report(self, command: str) -> Report:
        return Report(
            command=command, server_version=str(self.session.caps.version), delete_mode=self.delete_mode,
            libraries=[lib.id for lib in self.libraries],
        )

    # --- plan -----------------------------------------------------------------------------------

    def plan(self) -> Report:
        """The decisions `run` would take, from the listing and a few whole-library reads: no request
        that changes anything (the client refuses those), and no per-asset reads, so a library of
        100k assets plans in seconds."""
        client = self.session.client
        report = self._new_report("plan")
        memories = self._memory_map(report)
        albums_of = self._album_map()
        albums_touched: set[str] = set()
        listed: set[str] = set()
        total_bytes = pairs = 0
        seen: set[str] = set()
        sizes: dict[str, int] = {}

        def note(asset: Asset) -> None:
            listed.add(asset.id)
            sizes[asset.id] = asset.size or 0

        for library in self.libraries:
            for unit in list_units(client, library.id, page_size=1000, seen=seen, listed=note):
                a = unit.asset
                decision = decide(a, user_id=self.session.user.id, delete_mode=self.delete_mode)
                outcome = Outcome(a.id, a.originalPath, a.libraryId or "", "planned" if decision.action != "skip" else "skipped",
                                  reason=decision.reason, assets=unit.assets, plan=decision.label)
                if decision.action != "skip":
                    size = sizes.get(a.id, 0) + (sizes.get(unit.video_id, 0) if unit.video_id else 0)
                    outcome.bytes = size
                    total_bytes += size
                    pairs += 1 if unit.video_id else 0
                    albums_touched |= albums_of.get(a.id, set())
                    if memories.get(a.id):
                        outcome.cannot_move.append(f"shown in {memories[a.id]} memories")
                report.add(outcome)
        planned = [o for o in report.outcomes if o.kind == "planned"]
        report.listed = len(listed)
        report.notes.append(
            f"would move {sum(o.assets for o in planned)} assets ({len(planned)} items, {pairs} live photos), "
            f"{total_bytes} bytes, touching {len(albums_touched)} albums; the next run takes up to "
            f"{self.limits.batch_size} (EXT2INT_BATCH_SIZE)"
        )
        report.notes.append("not carried by design: comments and likes in shared albums stay with the old asset; "
                            "Immich regenerates smart-search, OCR and memories for the new one")
        report.remaining = self.remaining()
        report.finish()
        return report

    def _album_map(self) -> dict[str, set[str]]:
        """asset id -> album ids, for the plan's totals, from each album's members in these libraries."""
        client = self.session.client
        data = client.t.json("GET", "/albums")
        out: dict[str, set[str]] = {}
        for album in data or []:
            for library in self.libraries:
                for asset in client.iter_assets(with_exif=False, albumIds=[album["id"]], libraryId=library.id):
                    out.setdefault(asset.id, set()).add(album["id"])
        return out


class Flight:
    """Units in flight, in two phases. Phase one (read, transfer, carry) takes one of the
    EXT2INT_CONCURRENCY slots; phase two (wait for Immich to settle, verify) runs in a separate, larger
    pool, so new transfers start while Immich is still digesting earlier uploads. Memory stays bounded:
    a unit in phase two holds no bytes, and their number is capped too."""

    def __init__(self, mover: Mover, concurrency: int, finished: Callable[[Outcome], None],
                 transferred: Callable[[Outcome], None]):
        self.mover, self.concurrency, self.finished, self.transferred = mover, concurrency, finished, transferred
        self.movers = cf.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="move")
        self.verifiers = cf.ThreadPoolExecutor(max_workers=concurrency * 4, thread_name_prefix="verify")
        self.active: dict[cf.Future, tuple[str, Unit]] = {}

    def count(self, phase: str) -> int:
        return sum(1 for kind, _ in self.active.values() if kind == phase)

    def has_room(self) -> bool:
        return self.count("move") < self.concurrency and self.count("verify") < self.concurrency * 8

    def start(self, unit: Unit) -> None:
        self.active[self.movers.submit(self.mover.move, unit)] = ("move", unit)

    def collect(self, timeout: float | None) -> None:
        if not self.active:
            return
        done, _ = cf.wait(list(self.active), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        for future in done:
            phase, unit = self.active.pop(future)
            result = _result_or_failure(future, unit)
            if phase == "move":
                self.transferred(result.outcome if isinstance(result, Pending) else result)
            if isinstance(result, Pending):
                self.active[self.verifiers.submit(self.mover.complete, result)] = ("verify", unit)
            else:
                self.finished(result)

    def abandon(self) -> list[Unit]:
        units = [unit for _, unit in self.active.values()]
        self.active.clear()
        return units

    def shutdown(self, wait: bool) -> None:
        self.movers.shutdown(wait=wait, cancel_futures=True)
        self.verifiers.shutdown(wait=wait, cancel_futures=True)


class DeleteBatch:
    """Verified sources waiting for deletion, deleted many per request (DELETE /assets takes a list).
    An outcome is accounted for only once its delete succeeded; a failed delete fails its outcomes at
    stage 'delete' and deletes nothing more. A run killed with sources still queued leaves them
    journalled and verified: the next run re-verifies and deletes them."""

    MAX_ITEMS = 25
    MAX_AGE = 2.0  # seconds a verified source may wait

    def __init__(self, client: ImmichClient, *, force: bool, account: Callable[[Outcome], None]):
        self.client, self.force, self.account = client, force, account
        self.waiting: list[Outcome] = []
        self.since = 0.0
        self.worked = False  # the first delete goes out alone: a refused permission stops the run early

    def add(self, outcome: Outcome) -> None:
        if not self.waiting:
            self.since = time.monotonic()
        self.waiting.append(outcome)

    def flush_if_due(self) -> None:
        if not self.waiting:
            return
        if not self.worked or len(self.waiting) >= self.MAX_ITEMS or time.monotonic() - self.since >= self.MAX_AGE:
            self.flush()

    def flush(self) -> None:
        batch, self.waiting = self.waiting, []
        if not batch:
            return
        started = time.perf_counter()
        try:
            self.client.delete_assets([i for o in batch for i in o.pending_delete], force=self.force)
        except errors.ImmichError as exc:
            for outcome in batch:
                outcome.kind, outcome.stage, outcome.reason = "failed", "delete", str(exc)
                if isinstance(exc, errors.PermissionMissing):
                    outcome.stops_run = f"the API key lacks {exc.permission}"
        else:
            self.worked = True
            for outcome in batch:
                outcome.deleted = True
        share = (time.perf_counter() - started) / len(batch)
        for outcome in batch:
            outcome.pending_delete = []
            outcome.steps["delete"] = outcome.steps.get("delete", 0.0) + share
            self.account(outcome)


def _result_or_failure(future: cf.Future, unit: Unit) -> Outcome | Pending:
    try:
        return future.result()
    except Exception as exc:  # a bug must not lose the account of the asset
        a = unit.asset
        log.exception("unexpected error moving %s", a.originalPath)
        return Outcome(a.id, a.originalPath, a.libraryId or "", "failed", stage="incomplete",
                       reason=f"unexpected error: {type(exc).__name__}: {exc}", assets=unit.assets)


def describe_library(session: Session, library: Library) -> dict[str, Any]:
    return {"id": library.id, "name": library.name, "ownerId": library.ownerId,
            "migratable": library.ownerId == session.user.id}

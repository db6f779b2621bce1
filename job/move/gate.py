"""The delete gate: the one place the job deletes anything. Nothing else calls DELETE /assets.

Right before the delete request, for every unit in it, the gate reads again what the deletion depends
on (`evidence.gather`) and decides (`judge`, pure) whether it still holds at that moment:

1. only our sources: every id is an external asset of a selected library that this run took from its
   own listing, still live, still the user's; never a target, never an id an answer handed us;
2. our claim: this run still holds every source (no other process acts on them);
3. the curation now: each source's record, read again, is covered by what the target was verified to
   hold (a value the user changed during the move waits for the next run, which carries it);
4. the targets: still there, internal, the user's, holding the proven bytes, the still linked to its
   video, and still showing the values the unit verified (another unit's carry into the same target, or
   an edit, may have written over them);
5. the bytes now: the file still is what was hashed: its ETag (size and modification time) unchanged,
   and hashed again when the proof is from an earlier run or older than EXT2INT_REHASH_AFTER;
6. the file's other users: no other library (of any user) holds the same file, under any of its names,
   except this unit's own path twins, and the file is not one of Immich's own;
7. the sidecar's other readers: no live asset outside the delete, and no file beside it, may read the
   XMP sidecar Immich deletes with the original (a RAW+JPEG pair's one IMG_1.xmp);
8. live halves: no still outside the unit uses a video that goes.

A file that several users' libraries hold (a family's shared folder), or a sidecar several files read,
goes only with every one of its assets, of every user the run holds a key for: the gate keeps a unit that passed until the others' assets
of its files have passed too (it asks the runner to move them now), then deletes them together, each
user's with their own key. The rules are pure, in `rules.py`.

A unit that passes is deleted (all of a batch in one request per user); one that does not is held,
waits, or fails, with its reason, and keeps its journal so that a later run finishes without a new
transfer.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from job import journal
from job.clock import SYSTEM, instant
from job.decide import Scope
from job.facts import instant_text
from job.immich import errors
from job.immich.models import Asset
from job.move import bring, claim, read
from job.move.context import AlbumMarks, Pending, RunContext, StepFailed
from job.move.evidence import gather
from job.move.rules import PASS, Ruling, Verdict, copy_verdict, groups, judge, partners_of
from job.outcome import Outcome, Stage
from job.settings import DeleteMode

__all__ = ["Gate", "PASS", "Verdict", "judge"]

log = logging.getLogger("ext2int")


class Gate:
    """Verified units wait here to be released; they are judged and deleted together, at most
    MAX_ITEMS per request and MAX_AGE seconds after the first one came, by the gate's own thread, so that
    the run goes on taking and moving units meanwhile. A unit is accounted for only once its fate is
    known. A run killed with units waiting here leaves them journalled and verified: the next run
    finishes them."""

    MAX_ITEMS = 25
    MAX_AGE = 2.0  # seconds (real time: this batches requests, it decides nothing)

    def __init__(self, ctxs: dict[str, RunContext], account: Callable[[Outcome], None],
                 scopes: Callable[[], dict[str, Scope]], want: Callable[[str, Asset], None] = lambda user, asset: None):
        """`ctxs`: each user's context, by user id (one for a run with one key); `scopes`: each user's
        view of the libraries now; `want(user, asset)`: ask the run to move that user's asset now (the
        other users' assets of a shared file)."""
        self.ctxs, self.account, self.scopes, self.want = ctxs, account, scopes, want
        settings = next(iter(ctxs.values())).settings
        self.force = settings.delete is DeleteMode.FORCE
        self.waiting: list[Pending] = []
        self.parked: list[Pending] = []  # passed, waiting for the other users' assets of their files
        self._missing: dict[int, dict[str, Asset]] = {}  # a parked unit's group: what it waits for
        self.since = 0.0
        self._crowded: set[tuple[str, str]] = set()  # (user, library): not worth listing its sources (see _sources_listed)
        self.worked = False  # a first delete went through (the run holds back until then)
        self.pool = cf.ThreadPoolExecutor(max_workers=settings.pools.helpers, thread_name_prefix="gate")
        self._due = threading.Condition()
        self._releasing = threading.Lock()
        self._closing = False
        self._thread = threading.Thread(target=self._release_when_due, name="gate", daemon=True)
        self._thread.start()

    def ctx_of(self, pending: Pending) -> RunContext:
        return self._ctx(pending.unit.user)

    def _ctx(self, user: str) -> RunContext:
        """That user's context (the run's only one, in a run with one key)."""
        return self.ctxs.get(user) or next(iter(self.ctxs.values()))

    def submit(self, pending: Pending) -> None:
        with self._due:
            if not self.waiting:
                self.since = SYSTEM.monotonic()
            self.waiting.append(pending)
            self._due.notify()

    def flush(self) -> None:
        """Release what waits, now, in the caller's thread."""
        with self._due:
            batch, self.waiting = self.waiting, []
        self._release_and_account(batch)

    @property
    def busy(self) -> bool:
        """Units wait to be released (parked ones not counted)."""
        with self._due:
            return bool(self.waiting)

    def close(self) -> None:
        """Release what still waits, and stop. Parked units whose partners did not come wait for a later run."""
        with self._due:
            self._closing = True
            self._due.notify()
        self._thread.join()
        self.flush()
        with self._releasing:
            parked, self.parked = self.parked, []
        for pending in parked:
            missing = ", ".join(sorted({f"{self._owner(a)}'s {a.originalPath}" for a in self._missing.get(id(pending), {}).values()}))
            self._not_now(pending, Verdict(Ruling.WAIT, message="an asset it must go with (the same file in another user's "
                                                           "library, or a file that may read the same XMP sidecar) did "
                                                           "not pass the gate in this run; a later run moves them "
                                                           "together", details=(missing,) if missing else ()))
            self.account(pending.outcome)
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _release_when_due(self) -> None:
        while True:
            with self._due:
                while not self._closing and not self._is_due():
                    self._due.wait(None if not self.waiting else max(0.0, self.since + self.MAX_AGE - SYSTEM.monotonic()))
                if self._closing:
                    return
                batch, self.waiting = self.waiting, []
            self._release_and_account(batch)

    def _is_due(self) -> bool:
        return bool(self.waiting) and (len(self.waiting) >= self.MAX_ITEMS or SYSTEM.monotonic() - self.since >= self.MAX_AGE)

    def _release_and_account(self, batch: list[Pending]) -> None:
        if batch:
            for pending in self.release(batch):
                self.account(pending.outcome)

    def release(self, batch: list[Pending], park: bool = True) -> list[Pending]:
        """Judge the units of `batch` now (and the parked ones, whose partners may have come), delete
        those that pass, per user in one request; return the units of `batch` whose fate is known (each
        outcome says it): the caller records them. Parked units decided now are recorded here. With `park`
        False, a unit whose partners have not come is returned to no one: the caller submits it again later."""
        with self._releasing:
            decided = self._release(batch, park)
        mine = {id(p) for p in batch}
        for pending in decided:
            if id(pending) not in mine:
                self.account(pending.outcome)
        return [p for p in decided if id(p) in mine]

    def _release(self, batch: list[Pending], park: bool) -> list[Pending]:
        started = SYSTEM.monotonic()
        scopes = self.scopes()
        units, was_parked = self.parked + batch, {id(p) for p in self.parked}
        self.parked = []
        marks = self._album_marks(units)
        listed = self._targets_listed([p for p in units if id(p) not in was_parked])
        whole = self._sources_listed(units)
        judged = [self._judge(p, scopes, marks, listed, whole) for p in units] if len(units) <= 1 else \
            list(self.pool.map(lambda p: self._judge(p, scopes, marks, listed, whole), units))
        verdicts = {id(p): v for p, (v, _) in zip(units, judged)}
        decided, passing = [], []
        for group in groups([(p, needs) for p, (_, needs) in zip(units, judged)]):
            refused = [p for p in group.units if verdicts[id(p)] is not PASS]
            if refused:
                for p in group.units:
                    if verdicts[id(p)] is PASS:  # the file stays while another user's asset of it stays
                        first = refused[0]
                        verdicts[id(p)] = Verdict(Ruling.WAIT, message=f"{first.outcome.path} of {self._owner(first.unit.asset)}, "
                                                  f"which must go with it (the same file, or the same sidecar), did "
                                                  f"not pass the gate now: "
                                                  f"{verdicts[id(first)].message or verdicts[id(first)].kind}")
                decided += group.units
            elif group.missing and park:
                for p in group.units:
                    self._missing[id(p)] = group.missing
                self.parked += group.units
                for asset in group.missing.values():
                    self.want(asset.ownerId, asset)
            elif group.missing:  # not parked now: what was parked stays, the rest goes back to the caller
                self.parked += [p for p in group.units if id(p) in was_parked]
            else:
                passing += group.units
                decided += group.units
        failures = self._delete(passing)
        share = (SYSTEM.monotonic() - started) / max(1, len(decided))
        for pending in decided:
            outcome, ctx = pending.outcome, self.ctx_of(pending)
            outcome.steps[Stage.DELETE.value] = outcome.steps.get(Stage.DELETE.value, 0.0) + share
            if ctx.on_step:
                ctx.on_step(Stage.DELETE.value, share)
            verdict = verdicts[id(pending)]
            if not verdict.passes:
                self._not_now(pending, verdict)
            elif pending.unit.user in failures:
                outcome.fail(Stage.DELETE, failures[pending.unit.user])  # a missing permission stops the run
                try:  # its sources are still there: let others take them
                    claim.let_go(ctx, pending.claim, pending.claim_ids)
                except errors.ImmichError:
                    pass  # tried again on the run's way out
            else:
                verdict.end(outcome, pending.created)
        return decided

    def _album_marks(self, units: list[Pending]) -> dict[str, dict[str, str | None] | None]:
        """Each user's albums now, one read per user for the whole batch (AlbumMarks); None where the
        read failed (their units then read each source's albums)."""
        marks: dict[str, dict[str, str | None] | None] = {}
        for pending in units:
            user = pending.unit.user
            if user not in marks:
                ctx = self.ctx_of(pending)
                try:
                    marks[user] = ctx.album_marks.read(ctx.client)
                except errors.ImmichError:
                    marks[user] = None
        return marks

    MAX_LISTED_PAGES = 3  # a listing longer than this (a busy server) is left for one read per target

    def _targets_listed(self, units: list[Pending]) -> dict[str, dict[str, Asset]]:
        """Each user's assets updated since the earliest verification of their units' targets: one
        `POST /search/metadata` (`updatedAfter`, inclusive, trashed ones included) per user and batch.
        Every update of an asset's row moves its updatedAt, and nothing moves it back, so each target is
        in it, with its row and EXIF as they are now (`evidence.target_now` says when that suffices). A
        user whose listing fails or runs long gets none: their targets are read one by one."""
        bounds: dict[str, str] = {}
        for pending in units:
            for member in pending.members:
                at = member.verified.updatedAt if member.verified is not None else None
                user = pending.unit.user
                if at is not None and (user not in bounds or at < bounds[user]):
                    bounds[user] = at  # ISO 8601 in UTC, one format: they order as text
        listed: dict[str, dict[str, Asset]] = {}
        for user, bound in bounds.items():
            ctx = self._ctx(user)
            found: dict[str, Asset] = {}
            try:
                for page in range(1, self.MAX_LISTED_PAGES + 1):
                    result = ctx.client.search_assets(page=page, size=1000, with_exif=True, with_deleted=True,
                                                      updatedAfter=bound)
                    found.update((a.id, a) for a in result.items)
                    if not result.nextPage:
                        listed[user] = found
                        break
            except errors.ImmichError:
                pass
        return listed

    SOURCES_PAGE = 100  # one page per library and batch; a source beyond it is read on its own

    def _sources_listed(self, units: list[Pending]) -> dict[str, Asset | None]:
        """The batch's sources as their own reads would show them now, where one listing can: on a server
        whose listing carries the whole record (`Capabilities.listed_record`, 3.1.x), one `POST
        /search/metadata` per user and library over the span of the sources' `fileCreatedAt` (1 ms wider
        each way), in no album, untagged and unstacked, with EXIF and people, trashed ones left out. Only
        presence counts: a source in it is, at this moment, live, in no album, untagged, unstacked, not
        locked (locked assets are never listed), with every other field as `GET /assets/{id}` shows it (the
        contract step `observe_listing_whole`). A source looked for in a listing that ended on its page and
        not in it (None: its date changed, it joined an album, was tagged, stacked, trashed, locked or
        deleted) is read on its own, its albums too. Sources whose start showed an album, a tag or a
        stack, those beyond a full page, and those of a listing that failed, are not in the answer: they
        are read as always. A library whose span holds far more than its batch (many files of one
        date: Immich orders them by id, so the batch's sources need not be on the first page) is listed
        no more in this run once a full page showed fewer than half of the sources looked for."""
        spans: dict[tuple[str, str], tuple[datetime, datetime]] = {}
        wanted: dict[tuple[str, str], list[str]] = {}
        for pending in units:
            if not self.ctx_of(pending).caps.listed_record:
                continue
            for member in pending.members:
                for facts in member.sources:
                    a, at = facts.asset, instant(facts.asset.fileCreatedAt)
                    if a.tags or a.stack is not None or facts.albums or not a.libraryId or at is None:
                        continue
                    key = (pending.unit.user, a.libraryId)
                    wanted.setdefault(key, []).append(a.id)
                    lo, hi = spans.get(key, (at, at))
                    spans[key] = (min(lo, at), max(hi, at))
        found: dict[str, Asset | None] = {}
        ms = timedelta(milliseconds=1)  # Immich answers in milliseconds: a finer stored time stays inside
        for (user, library), (lo, hi) in spans.items():
            if (user, library) in self._crowded:
                continue
            try:
                page = self._ctx(user).client.search_assets(
                    page=1, size=self.SOURCES_PAGE, with_exif=True, with_people=True, unstacked=True, libraryId=library,
                    hasAlbums=False, hasTags=False, takenAfter=instant_text(lo - ms),
                    takenBefore=instant_text(hi + ms))
            except errors.ImmichError:
                continue
            listed = {a.id: a for a in page.items if a.libraryId == library and not a.isTrashed}
            ids = wanted[(user, library)]
            for i in ids:  # beyond a full page (nextPage), a source not on it proves nothing: left out
                if i in listed or not page.nextPage:
                    found[i] = read.listed_whole(listed[i]) if i in listed else None
            if page.nextPage and 2 * len([i for i in ids if i in listed]) < len(ids):
                self._crowded.add((user, library))
        return found

    def _judge(self, pending: Pending, scopes: dict[str, Scope], marks: dict[str, dict[str, str | None] | None],
               listed: dict[str, dict[str, Asset]], whole: dict[str, Asset | None]) -> tuple[Verdict, dict[str, Asset]]:
        ctx = self.ctx_of(pending)
        scope = scopes.get(pending.unit.user) or next(iter(scopes.values()))
        now = marks.get(pending.unit.user)
        try:
            evidence = gather(ctx, pending, scope, others=lambda user: self.ctxs[user],
                              albums_held=now is not None and AlbumMarks.unchanged(pending.albums_before, now),
                              listed=listed.get(pending.unit.user), whole=whole)
            verdict = judge(pending, evidence, scope=scope, is_source=ctx.sources.__contains__,
                            claim_holds=lambda f: claim.holds(ctx, pending.claim, f.metadata))
            return verdict, partners_of(evidence, scope)
        except (errors.ImmichError, errors.TruncatedTransfer) as exc:
            return Verdict(Ruling.FAIL, message=f"could not check what depends on it: {exc}"), {}

    def _delete(self, passing: list[Pending]) -> dict[str, errors.ImmichError]:
        """The one DELETE /assets the job makes (one per user whose units pass): the failures by user."""
        by_user: dict[str, list[str]] = {}
        for pending in passing:
            by_user.setdefault(pending.unit.user, []).extend(pending.source_ids)
        failures = {}
        for user, ids in by_user.items():
            ctx = self._ctx(user)
            ctx.held.drop([p.claim for p in passing if p.unit.user == user])  # their sources go: never renewed again
            try:
                ctx.client.delete_assets(ids, force=self.force)
            except errors.ImmichError as exc:
                failures[user] = exc
                continue
            self.worked = True
            if not self.force:
                self._journal_trashed(ctx, [p for p in passing if p.unit.user == user])
        return failures

    @staticmethod
    def _journal_trashed(ctx: RunContext, trashed: list[Pending]) -> None:
        """What the trash watch proves again until Immich purges the trash (job/run/watch.py): each source
        just trashed, journalled with its target and the bytes moved, and its claim released (the unit has
        ended: a source the watch restores is free for the next move). One request, after the delete: it
        adds nothing to the instant between the gate's last read and the delete."""
        writes = bring.journal_writes(ctx, [m for p in trashed for m in p.members], journal.State.TRASHED)
        writes += [(i, journal.CLAIM_KEY, journal.Claim(p.claim.run, p.claim.unit, 0.0).value())
                   for p in trashed if p.claim is not None for i in p.claim_ids]
        try:
            ctx.client.upsert_metadata(writes, bulk=ctx.caps.bulk_metadata)
        except errors.ImmichError as exc:
            log.warning("could not journal %d trashed source(s) for the trash watch (%s): a change made at the moment "
                        "of their delete is not looked for", len(writes), exc)

    @staticmethod
    def let_go_of_copies(ctx: RunContext, copies: list[tuple[str, dict | None, list[str]]]) -> dict[str, Verdict]:
        """`ext2int undo`: trash the internal copies the job made, [(target id, its provenance, its sources)],
        each judged now (rules.copy_verdict: made by the job for these sources alone, and every source is
        back and whole). The only other delete the job makes; the verdict of each copy is returned."""
        verdicts: dict[str, Verdict] = {}
        for target_id, marker, source_ids in copies:
            target = read.maybe_asset(ctx, target_id)
            now = {i: read.maybe_asset(ctx, i) for i in source_ids}
            verdicts[target_id] = copy_verdict(target, marker, now, ctx.scope.user_id)
        going = [t for t, v in verdicts.items() if v is PASS]
        if going:
            ctx.client.delete_assets(going, force=False)  # to the trash: restorable, like every delete of ours
        return verdicts

    def _owner(self, asset: Asset) -> str:
        scope = next(iter(self.ctxs.values())).scope
        return scope.owners.get(asset.ownerId, asset.ownerId)

    def _not_now(self, pending: Pending, verdict: Verdict) -> None:
        """A unit the gate did not release: say why, journal it, let others take it."""
        outcome, ctx = pending.outcome, self.ctx_of(pending)
        verdict.end(outcome, pending.created)
        state = journal.State.HELD if verdict.kind is Ruling.HOLD else journal.State.COPIED
        try:
            try:
                bring.write_journals(ctx, pending.members, state)
            finally:
                claim.let_go(ctx, pending.claim, pending.claim_ids)
        except (errors.ImmichError, StepFailed) as exc:
            log.warning("could not journal %s after the gate held it: %s", outcome.path, exc)

"""The delete gate: the one place the job deletes anything. Nothing else calls DELETE /assets.

Right before the delete request, for every unit in it, the gate reads again what the deletion depends
on (`evidence.gather`) and decides (`judge`, pure) whether it still holds at that moment:

1. only our sources: every id is an external asset of a selected library that this run took from its
   own listing, still live, still the user's; never a target, never an id an answer handed us;
2. our claim: this run still holds every source (no other process acts on them);
3. the curation now: each source's record, read again, is covered by what the target was verified to
   hold (a value the user changed during the move waits for the next run, which carries it);
4. the targets: still there, internal, the user's, holding the proven bytes, the still linked to its
   video;
5. the bytes now: the file still is what was hashed: its ETag (size and modification time) unchanged,
   and hashed again when the proof is from an earlier run or older than EXT2INT_REHASH_AFTER;
6. the file's other users: no other library (of any user) holds the same file, except this unit's own
   path twins, and the file is not one of Immich's own;
7. live halves: no still outside the unit uses a video that goes.

A unit that passes is deleted (all of a batch in one request); one that does not is held, waits, or
fails, with its reason, and keeps its journal so that a later run finishes without a new transfer.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from job import journal
from job.clock import SYSTEM
from job.decide import Scope
from job.facts import Facts
from job.immich import errors
from job.immich.models import Asset
from job.move import bring, claim
from job.move.context import Member, Pending, RunContext, StepFailed
from job.move.evidence import Evidence, FileNow, gather
from job.outcome import Hold, Kind, Outcome, Stage
from job.record import Policy, differences, merge, record_of
from job.settings import DeleteMode

log = logging.getLogger("ext2int")


@dataclass(frozen=True)
class Verdict:
    kind: str  # "pass", "hold", "wait" or "fail"
    hold: Hold | None = None
    message: str = ""
    details: tuple[str, ...] = ()


PASS = Verdict("pass")


def _hold(reason: Hold, *details: str) -> Verdict:
    return Verdict("hold", hold=reason, details=details)


def _wait(message: str, *details: str) -> Verdict:
    return Verdict("wait", message=message, details=details)


# --- the judgement (pure) ----------------------------------------------------------------------------


def judge(pending: Pending, evidence: Evidence, *, scope: Scope, is_source: Callable[[str], bool],
          claim_holds: Callable[[Facts], bool]) -> Verdict:
    """May the sources of `pending` be deleted now? The first rule that does not hold decides."""
    unit_ids = set(pending.source_ids)
    for member, file in zip(pending.members, evidence.files):
        for source_id in member.ids:
            now = evidence.sources.get(source_id)
            verdict = _source_now(source_id, now, member, pending, scope, is_source, claim_holds)
            if verdict is not PASS:
                return verdict
        verdict = _target_now(member, evidence.targets.get(member.target_id))
        if verdict is not PASS:
            return verdict
        verdict = _file_verdict(member, file, unit_ids, scope)
        if verdict is not PASS:
            return verdict
    for stills in evidence.stills_of.values():
        outside = [s for s in stills if s.id not in unit_ids]
        if outside:
            return _hold(Hold.LIVE_STILL_ELSEWHERE, *(f"{s.originalPath} uses it as its video" for s in outside))
    return PASS


def _source_now(source_id: str, now: Facts | None, member: Member, pending: Pending, scope: Scope,
                is_source: Callable[[str], bool], claim_holds: Callable[[Facts], bool]) -> Verdict:
    if not is_source(source_id):
        return Verdict("fail", message=f"{source_id} is not an asset this run listed as a source: not deleted")
    if now is None or now.asset.isTrashed or now.asset.isOffline:
        return _wait("the external asset was deleted, trashed or went offline while it moved")
    asset = now.asset
    if not asset.is_external or asset.libraryId not in scope.selected or asset.ownerId != scope.user_id:
        return Verdict("fail", message=f"{asset.originalPath} is no longer an external asset of a selected library")
    if not claim_holds(now):
        return _wait("this run's claim on the asset ran out or was taken over: a later run finishes it")
    # what the source held when carried, or the target holds now, is no change; anything else is
    then = member.carried.get(source_id)
    allowed = member.expected if then is None else merge(then, member.expected, Policy.EXTERNAL)[0]
    changed = differences(record_of(now, pending.ids.source), allowed)
    if changed:
        return _wait("it was curated while it moved: a later run carries the change",
                     *(f"{asset.originalFileName}: {d}" for d in changed))
    return PASS


def _target_now(member: Member, target: Asset | None) -> Verdict:
    if target is None or target.isTrashed:
        return Verdict("fail", message=f"the internal asset {member.target_id} was deleted or trashed during the move")
    if target.is_external or target.checksum != member.sha1 or (target.size is not None and target.size != member.size):
        return Verdict("fail", message=f"the internal asset {member.target_id} no longer holds the proven bytes")
    if any(target.originalPath == f.asset.originalPath for f in member.sources):
        return _hold(Hold.IMMICH_STORAGE, f"{target.originalPath} is the internal asset's own file")
    if member.live_target and target.livePhotoVideoId != member.live_target:
        return _wait(f"the new still {target.id} is not linked to its video {member.live_target} (yet)")
    return PASS


def _file_verdict(member: Member, file: FileNow, unit_ids: set[str], scope: Scope) -> Verdict:
    path = member.source.asset.originalPath
    if file.hashed is not None and file.hashed != (member.sha1, member.size):
        return _hold(Hold.FILE_CHANGED, f"{path} now holds {file.hashed[1]} bytes of other content than the "
                                        f"{member.size} bytes copied")
    if file.view.hold is not None:
        decision = file.view.hold
        return _hold(decision.hold, *decision.details)
    for other in file.found or ():
        if other.id in unit_ids or other.originalPath != path or other.isTrashed or other.isOffline:
            continue
        if not other.is_external:
            return _hold(Hold.IMMICH_STORAGE, f"{path} is also the file of internal asset {other.id}")
        if other.libraryId not in scope.selected:
            return _hold(Hold.SHARED_UNSELECTED, f"also in your library {scope.library_name(other.libraryId)}")
        return _wait(f"another asset of the same file appeared in library {scope.library_name(other.libraryId)}")
    return PASS


# --- releasing: the one delete request ---------------------------------------------------------------


class Gate:
    """Verified units wait here to be released; they are judged and deleted together, at most
    MAX_ITEMS per request and MAX_AGE seconds after the first one came, by the gate's own thread, so that
    the run goes on taking and moving units meanwhile. A unit is accounted for only once its fate is
    known. A run killed with units waiting here leaves them journalled and verified: the next run
    finishes them."""

    MAX_ITEMS = 25
    MAX_AGE = 2.0  # seconds (real time: this batches requests, it decides nothing)

    def __init__(self, ctx: RunContext, account: Callable[[Outcome], None], scope: Callable[[], Scope]):
        self.ctx, self.account, self.scope = ctx, account, scope
        self.force = ctx.settings.delete is DeleteMode.FORCE
        self.waiting: list[Pending] = []
        self.since = 0.0
        self.worked = False  # a first delete went through (the run holds back until then)
        self.pool = cf.ThreadPoolExecutor(max_workers=ctx.settings.pools.helpers, thread_name_prefix="gate")
        self._due = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._release_when_due, name="gate", daemon=True)
        self._thread.start()

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

    def close(self) -> None:
        """Release what still waits, and stop."""
        with self._due:
            self._closing = True
            self._due.notify()
        self._thread.join()
        self.flush()
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
            self.release(batch)
            for pending in batch:
                self.account(pending.outcome)

    def release(self, batch: list[Pending]) -> None:
        """Judge every unit of `batch` now and delete those that pass, in one request; each outcome then
        says what happened (the caller accounts for it)."""
        started = SYSTEM.monotonic()
        scope = self.scope()
        futures = [self.pool.submit(gather, self.ctx, p, scope) for p in batch] if len(batch) > 1 else None
        verdicts = []
        for index, pending in enumerate(batch):
            try:
                evidence = futures[index].result() if futures else gather(self.ctx, pending, scope)
                verdicts.append(judge(pending, evidence, scope=scope, is_source=self.ctx.sources.__contains__,
                                      claim_holds=lambda f, p=pending: claim.holds(self.ctx, p.claim, f.metadata)))
            except (errors.ImmichError, errors.TruncatedTransfer) as exc:
                verdicts.append(Verdict("fail", message=f"could not check what depends on it: {exc}"))
        passing = [p for p, v in zip(batch, verdicts) if v is PASS]
        deleted = self._delete(passing)
        share = (SYSTEM.monotonic() - started) / len(batch)
        for pending, verdict in zip(batch, verdicts):
            outcome = pending.outcome
            outcome.steps[Stage.DELETE.value] = outcome.steps.get(Stage.DELETE.value, 0.0) + share
            if self.ctx.on_step:
                self.ctx.on_step(Stage.DELETE.value, share)
            if verdict is PASS:
                if deleted is None:
                    outcome.deleted = True
                else:
                    outcome.fail(Stage.DELETE, str(deleted))
                    if isinstance(deleted, errors.PermissionMissing):
                        outcome.stops_run = f"the API key lacks {deleted.permission}"
            else:
                self._not_now(pending, verdict)

    def _delete(self, passing: list[Pending]) -> errors.ImmichError | None:
        """The one DELETE /assets the job makes."""
        ids = [i for p in passing for i in p.source_ids]
        if not ids:
            return None
        try:
            self.ctx.client.delete_assets(ids, force=self.force)
        except errors.ImmichError as exc:
            return exc
        self.worked = True
        return None

    def _not_now(self, pending: Pending, verdict: Verdict) -> None:
        """A unit the gate did not release: say why, journal it, let others take it."""
        outcome = pending.outcome
        if verdict.kind == "hold":
            outcome.hold(verdict.hold, *verdict.details)
            state = journal.State.HELD
        elif verdict.kind == "wait":
            outcome.kind, outcome.reason, outcome.differences = Kind.WAITING, verdict.message, list(verdict.details)
            state = journal.State.COPIED
        else:
            outcome.fail(Stage.GATE, verdict.message, list(verdict.details))
            state = journal.State.COPIED
        try:
            bring.write_journals(self.ctx, pending.members, state)
            claim.release(self.ctx, pending.claim, pending.claim_ids)
        except (errors.ImmichError, StepFailed) as exc:
            log.warning("could not journal %s after the gate held it: %s", outcome.path, exc)

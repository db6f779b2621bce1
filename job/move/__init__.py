"""One unit (a photo, a video, or a live photo with its video half; each with the path twins of its
file) through its steps, each safe to repeat:

    phase one (holds a transfer slot):  read -> decide -> claim -> bring the bytes
    phase two (waits, holds no bytes):  confirm the claim -> carry -> settle and verify -> the gate

The steps are the modules beside this one (read, claim, bring, carry, verify, faces); every delete
goes through `gate.py`. A run killed between any two steps leaves a state the next run completes: the
upload deduplicates, the journal on a source says which target holds its bytes, every carry is
computed from what the target lacks, and nothing is deleted until the gate has judged the unit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from job import journal, ledger
from job.clock import SYSTEM
from job.decide import Action, decide, moves_with
from job.immich import errors
from job.immich.models import Asset
from job.move import bring, carry, claim, faces, read
from job.facts import Facts
from job.move.context import WHOLE_FRESH, AlbumMarks, Member, Pending, RunContext, StepFailed, Unit, Waiting, identity
from job.move.gate import Gate
from job.move.verify import await_read, settle_and_verify
from job.outcome import Hold, Outcome, Skip, Stage
from job.record import record_of
from job.settings import DeleteMode

log = logging.getLogger("ext2int")


class Mover:
    def __init__(self, ctx: RunContext, gate: Gate | None = None):
        self.ctx, self.gate = ctx, gate

    def move(self, unit: Unit) -> Outcome | Pending:
        """Phase one: read, decide, claim, bring the bytes. Returns the unit's Outcome when it ends here
        (skipped, held, failed; or done, for a stacked unit), else a Pending for `complete`."""
        outcome = unit.outcome()
        stage = [Stage.READ]
        return self._guard(outcome, stage, None, lambda: self._phase_one(unit, outcome, stage))

    def complete(self, pending: Pending) -> Outcome | Pending:
        """Phase two: confirm the claim, carry, settle and verify. Returns a verified Pending for the
        gate, or the unit's Outcome."""
        return self._guard(pending.outcome, pending.stage, pending, lambda: self._phase_two(pending))

    # --- phase one ----------------------------------------------------------------------------------

    def _phase_one(self, unit: Unit, outcome: Outcome, stage: list[Stage]) -> Outcome | Pending:
        ctx = self.ctx
        with self._step(outcome, stage, Stage.READ):
            albums_before = ctx.album_marks.before(ctx.client)  # before any read of the unit's sources
            listed = _listed_in_no_album(unit, albums_before)
            if listed is not None:
                albums_before = unit.no_albums
            read_at = SYSTEM.monotonic()
            still = read.source(ctx, unit.asset.id, albums_if_unchanged=listed, listed=_listed_whole(unit, ctx))
        if still.asset.stack is None:
            return self._prepare(unit, outcome, stage, still, read_at, albums_before)
        # Stacked assets move one at a time, both phases and the gate under one lock: each reads its stack
        # after the previous one has finished, so none compares itself with a member caught half-way.
        # One lock for all stacks: on servers without the copy endpoint, joining a stack replaces it.
        with ctx.stack_lock:
            with self._step(outcome, stage, Stage.READ):
                read_at = SYSTEM.monotonic()
                still = read.source(ctx, unit.asset.id, albums_if_unchanged=listed)
            result = self._prepare(unit, outcome, stage, still, read_at, albums_before)
            if isinstance(result, Pending):
                result = self.complete(result)
                if isinstance(result, Pending) and self.gate is not None:
                    # judged and deleted now, while the stack is locked; unless the same file waits for
                    # another user's asset of it: then it waits at the gate like any other unit
                    if not any(p is result for p in self.gate.release([result], park=False)):
                        return result
        return outcome

    def _prepare(self, unit: Unit, outcome: Outcome, stage: list[Stage], still, read_at: float,
                 albums_before: dict[str, str | None] | None = None) -> Outcome | Pending:
        ctx = self.ctx
        with self._step(outcome, stage, Stage.READ):
            video_id = still.asset.livePhotoVideoId
            video = read.maybe_asset(ctx, video_id) if video_id else None
            lone = still.asset.type == "VIDEO" and still.asset.visibility == "hidden" and ctx.live_stills
            decision = decide(still.asset, scope=ctx.scope, delete_mode=ctx.settings.delete, entry=still.marker(),
                              move_undone=ctx.settings.move_undone,
                              video=video, video_expected=video_id is not None,
                              stills=ctx.live_stills().get(still.asset.id, []) if lone else None)
            if decision.action in (Action.SKIP, Action.HOLD):
                return decision.end(outcome)
            outcome.cannot_move = read.cannot_move(ctx, still)
            members = self._members(still, video)
            for member in members:
                held, twins = read.path_twins(ctx, member.source)
                if held is not None:
                    return held.end(outcome)
                member.sources += [read.source(ctx, twin.id) for twin in twins]
                for facts in member.sources:
                    ctx.sources.add(facts.asset, ctx.scope)
        outcome.assets = sum(len(m.sources) for m in members)
        with self._step(outcome, stage, Stage.CARRY):
            conflicts = self._still_held(members)
        if conflicts:
            return outcome.hold(Hold.CONFLICT, *conflicts)
        ids = [i for m in members for i in m.ids]
        with self._step(outcome, stage, Stage.CLAIM):
            known = (read_at, {f.asset.id: f.metadata for m in members for f in m.sources})
            taken = claim.take(ctx, ids, unit.asset.id, known=known, also=bring.intents(ctx, members))
        if taken is None:
            return outcome.skip(Skip.CLAIMED)
        pending = Pending(outcome, stage, unit, members, identity(members), taken[0], ids, taken[1],
                          albums_before=albums_before)
        try:
            with self._step(outcome, stage, Stage.UPLOAD):
                for member in members:  # the video half first: the still links to it
                    if member.role == "still" and members[0].role == "video":
                        member.live_target = members[0].target_id
                    alone = len(member.sources) == 1  # then a new target must hold the source's own record
                    bring.bring(ctx, member, ledger.to_json(record_of(member.source, pending.ids.source)) if alone else None)
                    if bring.reimport_loop(ctx, member):
                        bring.write_journals(ctx, [member], journal.State.LOOP)
                        claim.release(ctx, pending.claim, ids)
                        outcome.target_id = member.target_id
                        return outcome.skip(Skip.REIMPORT_LOOP)
        except Exception:
            self._let_go_quietly(pending, None)
            raise
        outcome.target_id = members[-1].target_id
        outcome.bytes = sum(m.size for m in members if m.transferred)
        pending.ids = identity(members)
        return pending

    def _still_held(self, members: list[Member]) -> list[str]:
        """A unit an earlier run held for a conflict, whose conflict still stands, is held again from
        reads alone: nothing is claimed or written until the user has settled it in Immich."""
        probes = [Member(m.role, m.sources) for m in members]
        if not all(bring.from_journal(self.ctx, p, journal.State.HELD) for p in probes):
            return []
        ids = identity(probes)
        return [str(c) for p in probes for c in carry.expectation(self.ctx, p, ids)[2]]

    def _members(self, still, video) -> list[Member]:
        """The video half moves with its still only when it is an external asset of a selected library;
        any other video (a phone backup's) is only linked to."""
        if moves_with(video, self.ctx.scope):
            return [Member("video", [read.source(self.ctx, video.id)]), Member("still", [still])]
        return [Member("still", [still], live_target=video.id if video is not None else None)]

    # --- phase two ----------------------------------------------------------------------------------

    def _phase_two(self, pending: Pending) -> Outcome | Pending:
        ctx, outcome, stage, members = self.ctx, pending.outcome, pending.stage, pending.members
        with self._step(outcome, stage, Stage.CLAIM):
            if not claim.confirm(ctx, pending.claim, pending.claim_ids, pending.claimed_at):
                return outcome.skip(Skip.CLAIMED)
        # Units whose bytes land on one target (the same photo at two paths) carry and verify one after the
        # other: the second then sees what the first carried, and a conflict holds it, instead of the two
        # writing over each other and both passing their verification a moment apart.
        with ctx.targets.hold(m.target_id for m in members):
            with self._step(outcome, stage, Stage.CARRY):
                plans = [carry.expectation(ctx, m, pending.ids) for m in members]
                conflicts = [str(c) for _, _, found in plans for c in found]
                if conflicts:
                    self._let_go(pending, journal.State.HELD)
                    return outcome.hold(Hold.CONFLICT, *conflicts)
                for member, (expected, before, _) in zip(members, plans):
                    if member.created and member.made_before:
                        await_read(ctx, member)  # nothing joins a half-made copy before Immich has read it
                    member.expected = expected
                    bring.restore(ctx, member)  # a twin in the trash comes out only now: nothing holds the unit
                    carry.carry(ctx, member, before)
                    if member.sidecar_missing:
                        note = (f"the XMP sidecar of {member.source.asset.originalPath} is missing on disk: the "
                                "values Immich had read from it were carried through the API (nothing else the "
                                "file held)")
                        outcome.cannot_move.append(note)
                        log.warning("%s", note)
            with self._step(outcome, stage, Stage.VERIFY):
                for member in members:
                    settle_and_verify(ctx, member, pending.ids)
        with self._step(outcome, stage, Stage.GATE):
            faces.keep_covers(ctx, members[-1])
            if ctx.settings.delete is DeleteMode.KEEP:
                self._let_go(pending, journal.State.KEPT)
                return outcome.moved(pending.created)
        pending.verified = True
        return pending

    # --- how a unit ends ----------------------------------------------------------------------------

    def _guard(self, outcome: Outcome, stage: list[Stage], pending: Pending | None,
               work: Callable[[], Any]) -> Outcome | Pending:
        """Every way a move can end becomes the outcome's kind, stage and reason; a unit that ends
        early lets its claim go (and, when it waits, journals where its bytes are)."""
        try:
            return work()
        except Waiting as wait:
            outcome.wait(str(wait))
            state = journal.State.COPIED
        except StepFailed as failure:
            outcome.fail(failure.stage, failure, failure.differences)
            state = None
        except errors.ImmichError as exc:
            outcome.fail(stage[0], exc)  # a missing permission stops the run (Outcome.fail)
            state = None
        except errors.TruncatedTransfer as exc:
            outcome.fail(Stage.DOWNLOAD, exc)
            state = None
        if pending is not None:
            self._let_go_quietly(pending, state)
        return outcome

    def _let_go(self, pending: Pending, state: journal.State | None) -> None:
        """The unit ends before the gate: journal where its bytes are (when `state`), let others take it."""
        try:
            if state is not None:
                bring.write_journals(self.ctx, pending.members, state)
        finally:
            claim.let_go(self.ctx, pending.claim, pending.claim_ids)

    def _let_go_quietly(self, pending: Pending, state: journal.State | None) -> None:
        try:
            self._let_go(pending, state)
        except (errors.ImmichError, StepFailed):
            pass  # the claim expires by itself; the journal is only a shortcut

    @contextmanager
    def _step(self, outcome: Outcome, stage: list[Stage], name: Stage) -> Iterator[None]:
        stage[0] = name
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            outcome.steps[name.value] = outcome.steps.get(name.value, 0.0) + elapsed
            if self.ctx.on_step:
                self.ctx.on_step(name.value, elapsed)


def _listed_whole(unit: Unit, ctx: RunContext) -> Asset | None:
    """The unit's asset as listed, to stand for its own read at the start, when its page showed it whole
    (untagged, unstacked, with its people) within the last WHOLE_FRESH seconds. A change made since then
    reaches the gate, which reads the source itself again: the unit then waits for the next run, which
    carries it; nothing is deleted on the strength of a listing."""
    if unit.listed_at is None or ctx.clock.monotonic() - unit.listed_at > WHOLE_FRESH:
        return None
    return read.listed_whole(unit.asset)


def _listed_in_no_album(unit: Unit, latest: dict[str, str | None]) -> Facts | None:
    """The unit's asset as listed in no album, to read its albums from (`read.source`: none, while its own
    record is the one listed), when that can still stand: the latest read of the user's albums shows
    none new or moved since the read made before that listing. The albums' marks before the listing
    then become the unit's baseline, which the gate proves again at its own read (AlbumMarks)."""
    if unit.no_albums is None or not AlbumMarks.unchanged(unit.no_albums, latest):
        return None
    return Facts(asset=unit.asset, albums=())

"""`undo` (and `undo-plan`, its preview): take moves back while Immich's trash still holds their external
assets. For one run (EXT2INT_RUN_ID), the selected libraries, or everything. The job's provenance on each
internal copy (job/journal.py) names the sources it replaced; for each copy:

1. claim its sources (as a move does: no other process acts on them meanwhile);
2. mark their journal `undoing`: runs leave them, and a killed undo finishes next time (the copy still
   carries its provenance, so the next undo finds it again);
3. restore them from the trash, and read them back: the photo is in the external library again;
4. take back what the move made: a copy the job uploaded goes to the trash (through the delete gate,
   job/move/gate.py, which proves it is the job's own copy of these very sources, and that they are back);
   from an internal twin that existed before, only what the move added is removed and only the values
   it wrote are put back, where they are still as the move left them (job/ledger.py), and the sources
   leave its provenance; a copy curated since the move stays, and says why;
5. mark their journal `undone`: runs leave the assets external (until EXT2INT_MOVE_UNDONE=true).

Every step is safe to repeat. A move whose external asset is gone (EXT2INT_DELETE=force, or the trash
emptied since) cannot be undone: the report names it, and its copy stays.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

from job.commands import Command
from job import journal, ledger
from job.immich import errors
from job.immich.models import Asset
from job.move import claim, read
from job.move.context import RunContext
from job.move.held import renewing
from job.move.gate import Gate
from job.facts import face_box
from job.outcome import Hold, Outcome, Skip, Stage
from job.record import SELF, record_of
from job.report import Report
from job.run.audit import copies, identity_of, read_whole
from job.run.recorder import Recorder
from job.run.runner import Runner

log = logging.getLogger("ext2int")


@dataclass
class Move:
    """One internal copy and the sources of it that the undo takes back (a source and its path twins)."""

    target: Asset
    marker: dict
    entries: list[dict]  # the provenance entries of those sources
    sources: dict[str, Asset | None] = field(default_factory=dict)  # None: gone, the move cannot be undone

    @property
    def created(self) -> bool:
        return bool(self.marker.get("created"))

    @property
    def copy_goes(self) -> bool:
        """The copy goes to the trash: the job made it, and this undo takes back every source it replaced
        (not only one run's, of several: else the copy stays for the others, as a twin)."""
        return self.created and {e.get("source") for e in self.marker.get("sources", [])} <= set(self.sources)

    @property
    def run(self) -> str:
        return str(self.entries[0].get("run", ""))


BATCH = 50  # moves claimed together: the claim's wait is paid once per batch, not once per move


def undo(runner: Runner, dry_run: bool) -> Report:
    report = runner.new_report(Command.UNDO_PLAN if dry_run else Command.UNDO)
    report.run_id = "" if dry_run else f"undo-{uuid.uuid4()}"
    ctxs = runner.contexts(report.run_id or "undo-plan", report, None, links=False)
    wanted = str(runner.settings.run_id) if runner.settings.run_id else None
    account = Recorder(report, runner.observer, runner.halt)
    with renewing(ctxs):  # a batch's claims stay alive while its moves are taken back one by one
        for keyholder in runner.crew.keyholders:
            ctx = ctxs[keyholder.user_id]
            batch: list[tuple[Move, Outcome]] = []
            for move, outcome in moves(ctx, keyholder.libraries, wanted):
                if runner.stop.is_set():
                    report.stopped_because = runner.stop_reason
                    break
                if any(a is None for a in move.sources.values()):
                    account(outcome.fail(Stage.READ, "cannot be undone: the external asset is gone (EXT2INT_DELETE=force, "
                                                     "or Immich's trash emptied since); its internal copy stays"))
                elif dry_run:
                    _guarded(preview, ctx, move, outcome)
                    account(outcome)
                else:
                    batch.append((move, outcome))
                    if len(batch) == BATCH:
                        _take_back_all(ctx, batch, account)
                        batch = []
            _take_back_all(ctx, batch, account)
    report.finish()
    return report


def moves(ctx: RunContext, libraries, run: str | None) -> Iterator[tuple[Move, Outcome]]:
    """Every copy of the user's moves (of `run`) with the sources of the selected libraries it replaced."""
    selected = {lib.id for lib in libraries}
    for target, marker in copies(ctx, libraries, run):
        entries = [e for e in marker["sources"] if e.get("library") in selected and (run is None or e.get("run") == run)]
        move = Move(target, marker, entries, {e["source"]: read.maybe_asset(ctx, e["source"]) for e in entries})
        yield move, Outcome.of_copy(entries[0], len(entries), target.id)


def _take_back_all(ctx: RunContext, batch: list[tuple[Move, Outcome]], account: Callable[[Outcome], None]) -> None:
    """Claim every move's sources (a move's trashed sources whatever lingers on them: a move that trashed a
    source is done with it), wait once, then take each move back that is still ours."""
    taken: list[tuple | None | errors.ImmichError] = []
    for move, outcome in batch:
        ids = list(move.sources)
        try:
            taken.append(claim.take(ctx, ids, ids[0], over=frozenset(i for i, a in move.sources.items() if a.isTrashed)))
        except (errors.ImmichError, claim.TooSlow) as exc:
            taken.append(exc)
    for (move, outcome), claimed in zip(batch, taken):
        if isinstance(claimed, (errors.ImmichError, claim.TooSlow)):
            outcome.fail(Stage.CLAIM, f"undo stopped: {claimed}; run it again to finish")
        elif claimed is None:
            outcome.skip(Skip.CLAIMED)
        else:
            _guarded(lambda c, m, o: take_back(c, m, o) if claim.confirm(c, claimed[0], list(m.sources), claimed[1])
                     else o.skip(Skip.CLAIMED), ctx, move, outcome)
            try:
                claim.release(ctx, claimed[0], list(move.sources))
            except errors.ImmichError:
                pass  # the claim expires by itself
        account(outcome)


def _guarded(step: Callable[[RunContext, Move, Outcome], None], ctx: RunContext, move: Move, outcome: Outcome) -> None:
    try:
        step(ctx, move, outcome)
    except errors.ImmichError as exc:
        outcome.fail(Stage.INCOMPLETE, f"undo stopped: {exc}; run it again to finish")


def take_back(ctx: RunContext, move: Move, outcome: Outcome) -> None:
    """Steps 2 to 5 for one claimed move (see the module's doc)."""
    ids = list(move.sources)
    _mark(ctx, move, journal.State.UNDOING)
    trashed = [i for i, a in move.sources.items() if a.isTrashed]
    if trashed:
        ctx.client.restore(trashed)
    back = {i: read.maybe_asset(ctx, i) for i in ids}
    if any(a is None or a.isTrashed for a in back.values()):
        outcome.fail(Stage.READ, "the external asset did not come back from the trash: nothing else was changed")
        return
    done = [f"restored {len(trashed)} external asset(s)" if trashed else "the external asset was not in the trash"]
    if move.copy_goes:
        if not _let_go(ctx, move, move.target, outcome, done):
            return
    else:  # a twin that existed before, or a copy that another source, not taken back now, still needs
        _take_from_twin(ctx, move, move.target, outcome, done)
    _mark(ctx, move, journal.State.UNDONE)
    outcome.undone("; ".join(done))


def _let_go(ctx: RunContext, move: Move, target: Asset, outcome: Outcome, done: list[str]) -> bool:
    marker = move.marker
    later = _curated_since(ctx, target, marker)
    if later:
        _mark(ctx, move, journal.State.UNDONE)  # both stay: the external asset is back, the copy keeps its curation
        outcome.hold(Hold.CURATED_SINCE, *later)
        return False
    expected = ledger.from_json(marker.get("expected"))
    if expected is not None:
        _hand_back(ctx, move, target, expected.covers or frozenset(), bool(expected.stack and expected.stack.primary_is_self))
    verdict = Gate.let_go_of_copies(ctx, [(target.id, marker, list(move.sources))])[target.id]
    if not verdict.passes:
        outcome.fail(Stage.GATE, verdict.message, list(verdict.details))
        return False
    done.append(f"its copy {target.id}, made by run {move.run}, is in the trash")
    return True


def _hand_back(ctx: RunContext, move: Move, target: Asset, covers: frozenset[str], primary: bool) -> None:
    """What the move handed from the sources to `target` goes back: the `covers` of albums a source was
    the cover of, and a stack's primary (`primary`), each to a source that is in that album or stack
    (with path twins, the album may hold only one of them; Immich refuses a cover that is not in it).
    When several are in it, the first is chosen: path twins are one file, so the album shows the same
    picture either way."""
    sources = list(move.sources)
    handed = [a for a in ctx.client.albums(target.id) if a.id in covers and a.albumThumbnailAssetId == target.id] if covers else []
    if handed:
        member_of = {s: {a.id for a in ctx.client.albums(s)} for s in sources}
        for album in handed:
            holder = next((s for s in sources if album.id in member_of[s]), None)
            if holder is not None:  # else the user took the sources out of the album since: the copy stays its cover
                ctx.client.set_album_cover(album.id, holder)
    if primary and target.stack is not None and target.stack.primaryAssetId == target.id:
        members = ctx.client.stack(target.stack.id).member_ids
        holder = next((s for s in sources if s in members), None)
        if holder is not None:
            ctx.client.set_stack_primary(target.stack.id, holder)


def _take_from_twin(ctx: RunContext, move: Move, target: Asset, outcome: Outcome, done: list[str]) -> None:
    c = ctx.client
    marker = move.marker
    before, expected = ledger.from_json(marker.get("before")), ledger.from_json(marker.get("expected"))
    if before is None or expected is None:
        outcome.differences.append("what the move added to the internal twin stays: it was moved by a version that "
                                   "did not record the twin's values before")
    else:
        now = record_of(read_whole(ctx, target, expected), {target.id: SELF})
        tb = ledger.takeback(before, expected, now)
        # covers and a stack's primary first: removing the twin from an album would let Immich re-pick its cover
        _hand_back(ctx, move, target, (expected.covers or frozenset()) - (before.covers or frozenset()),
                   bool(expected.stack and expected.stack.primary_is_self and not (before.stack and before.stack.primary_is_self)))
        for album in tb.albums:
            c.remove_from_album(album, [target.id])
        tags = {t.value: t.id for t in target.tags or ()}
        for value in tb.tags:
            if value in tags:
                c.untag_assets(tags[value], [target.id])
        for key in tb.metadata:
            c.delete_metadata_key(target.id, quote(key, safe=""))
        for face in c.faces_of(target.id) if tb.faces else ():
            mine = face_box(face)
            box = next((b for b in tb.faces if mine is not None and mine.person_id == b.person_id and mine.iou(b) >= 0.5),
                       None)
            if box is not None:
                c.delete_face(face.id)
        if before.stack is None and expected.stack is not None:  # the move put the twin in the source's stack
            now_stack = c.asset(target.id).stack
            if now_stack is not None and now_stack.primaryAssetId != target.id:
                c.remove_from_stack(now_stack.id, target.id)
        if tb.values:
            c.update_assets([target.id], **tb.values)
        if tb.edits == []:
            c.remove_edits(target.id)
        elif tb.edits:
            c.set_edits(target.id, tb.edits)
        done.append(f"took back from the internal twin {target.id} what the move added "
                    f"({', '.join(tb.summary()) or 'nothing was left'})")
        outcome.differences += tb.stays
    if marker.get("restored"):  # the move took the twin out of the trash: it goes back there
        verdict = Gate.let_go_of_copies(ctx, [(target.id, marker, list(move.sources))])[target.id]
        if verdict.passes:
            done.append(f"the internal twin {target.id} is back in the trash, where the move found it")
            return
        outcome.differences.append(f"the internal twin stays out of the trash: {verdict.message}")
    _forget(ctx, move, target.id, marker)


def _forget(ctx: RunContext, move: Move, target_id: str, marker: dict) -> None:
    """The twin's provenance without these sources (without the key, when none is left)."""
    gone = set(move.sources)
    left = [e for e in marker.get("sources", []) if e.get("source") not in gone]
    if left:
        ctx.client.upsert_metadata([(target_id, journal.KEY, {**marker, "sources": left})], bulk=ctx.caps.bulk_metadata)
    else:
        ctx.client.delete_metadata_key(target_id, quote(journal.KEY, safe=""))


def _curated_since(ctx: RunContext, target: Asset, marker: dict | None) -> list[str]:
    expected = ledger.from_json((marker or {}).get("expected"))
    if expected is None:
        return []  # an older marker: what it held after the move is unknown; the gate still proves it is ours
    return ledger.later_curation(expected, record_of(read_whole(ctx, target, expected), identity_of(target, expected)))


def _mark(ctx: RunContext, move: Move, state: journal.State) -> None:
    """The sources' journal: what the move did (from the copy's provenance), and how far the undo got."""
    at = ctx.clock.time()
    writes = []
    for entry in move.entries:
        source = move.sources[entry["source"]]
        value = journal.journal(state, target=move.target.id, sha1=entry.get("sha1", ""), size=entry.get("size", 0),
                                created=move.created, source=source, at=at, etag=None, run=ctx.run_id)
        writes.append((source.id, journal.KEY, value))
    ctx.client.upsert_metadata(writes, bulk=ctx.caps.bulk_metadata)


def preview(ctx: RunContext, move: Move, outcome: Outcome) -> None:
    """What `undo` would do with one move, reading only."""
    target = move.target
    steps = ["restore the external asset" if any(a.isTrashed for a in move.sources.values())
             else "keep the external asset"]
    if move.copy_goes:
        later = _curated_since(ctx, target, move.marker)
        if later:
            outcome.hold(Hold.CURATED_SINCE, *later)
            outcome.plan = "restore the external asset; the copy stays (curated since the move)"
            return
        steps.append(f"trash its copy {target.id} (made by run {move.run})")
    else:
        before, expected = ledger.from_json(move.marker.get("before")), ledger.from_json(move.marker.get("expected"))
        if before is None or expected is None:
            steps.append("what the move added to the internal twin stays (an older version moved it)")
        else:
            tb = ledger.takeback(before, expected, record_of(read_whole(ctx, target, expected), {target.id: SELF}))
            steps.append(f"take back from the internal twin {target.id}: {', '.join(tb.summary()) or 'nothing left'}")
            outcome.differences = tb.stays
    outcome.planned("undo: " + "; ".join(steps))

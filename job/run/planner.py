"""`plan`: what a run would do, changing nothing (the transport refuses every request that would).

Every listed asset gets the decisions the listing alone allows (skips, and holds for files another
user's library also holds). The units the next run would take (up to EXT2INT_BATCH_SIZE) are looked at
as `run` looks at them: journal, live-photo video, path twins, claims of another run, and, when an
earlier run already copied the bytes, the conflicts with the internal asset that holds them.

What plan cannot know, because it does not read the bytes: whether a photo already exists internally
(a phone backup of the same file), and so whether its values conflict with that copy. `run` finds out
after the upload (which changes nothing when Immich already has the bytes) and holds the asset before
writing anything.
"""

from __future__ import annotations

from job.commands import Command
from job import journal
from job.decide import Action, Decision, decide, file_holds, moves_with
from job.immich import errors
from job.move import carry, read
from job.move.context import Member, RunContext, Unit, identity
from job.outcome import Hold, Kind, Outcome, Skip, Stage
from job.report import Report
from job.run.listing import Feed
from job.run.recorder import Recorder
from job.run.runner import Runner


def plan(runner: Runner) -> Report:
    settings = runner.settings
    report = runner.new_report(Command.PLAN)
    ctxs = runner.contexts("plan", report, None, links=False)
    record = Recorder(report, halt=runner.halt)  # plan's terminal is its printed list: no line per asset
    albums_of = _album_map(runner)
    albums_touched: set[str] = set()
    sizes: dict[str, int] = {}
    seen: set[str] = set()
    feed = Feed(runner.listings(1000, lambda a: sizes.__setitem__(a.id, a.size or 0), seen), seen)
    deep = 0
    for unit, _ in feed:
        if runner.stop.is_set():
            report.stopped_because = runner.stop_reason
            break
        a, ctx = unit.asset, ctxs[unit.user]
        outcome = runner.quick(unit, ctx.scope)
        if outcome is None and deep < settings.batch_size:
            deep += 1
            outcome = _look(ctx, unit)
        elif outcome is None:
            outcome = unit.outcome().planned("move (a later run)")
        if outcome.kind is Kind.PLANNED:
            report.live_photos += 1 if unit.video_id else 0
            outcome.bytes = sizes.get(a.id, 0) + (sizes.get(unit.video_id, 0) if unit.video_id else 0)
            albums_touched |= albums_of.get(a.id, set())
            if ctx.memories.get(a.id):
                outcome.cannot_move.append(f"shown in {ctx.memories[a.id]} memories")
            partners = file_holds(a.originalPath, a.libraryId, ctx.scope).partners
            if partners:
                outcome.plan = (outcome.plan or "move") + ", with " + ", ".join(
                    f"{ctx.scope.describe(lib)}'s asset of the same file" for lib in partners)
        outcome.plan = outcome.plan or _label(outcome)
        record(outcome)
    report.listed = len(sizes)
    report.albums_touched = len(albums_touched)
    report.notes.append("not carried by design: comments and likes in shared albums stay with the old asset; "
                        "Immich regenerates smart-search, OCR and memories for the new one")
    report.notes.append("a photo that already exists internally (a phone backup of the same file) is only found when "
                        "run reads its bytes: if its values conflict, run holds it before writing anything")
    report.remaining = runner.remaining()
    report.finish()
    return report


def _look(ctx: RunContext, unit: Unit) -> Outcome:
    """Decide one unit as `run` would, reading but never writing."""
    outcome = unit.outcome()
    try:
        head = read.source(ctx, unit.asset.id)
        video = read.maybe_asset(ctx, head.asset.livePhotoVideoId) if head.asset.livePhotoVideoId else None
        lone = head.asset.type == "VIDEO" and head.asset.visibility == "hidden"
        decision = decide(head.asset, scope=ctx.scope, delete_mode=ctx.settings.delete, entry=head.marker(),
                          move_undone=ctx.settings.move_undone,
                          video=video, video_expected=head.asset.livePhotoVideoId is not None,
                          stills=ctx.live_stills().get(head.asset.id, []) if lone else None)
        if decision.action in (Action.MOVE, Action.FINISH):
            decision = _relations(ctx, head, video, decision, outcome)
    except errors.ImmichError as exc:
        return outcome.fail(Stage.READ, f"could not look at it: {exc}")
    return decision.end(outcome)


def _relations(ctx: RunContext, head, video, decision: Decision, outcome: Outcome) -> Decision:
    members = [Member("video", [read.source(ctx, video.id)])] if moves_with(video, ctx.scope) else []
    members.append(Member("still", [head]))
    for member in members:
        held, twins = read.path_twins(ctx, member.source)
        if held is not None:
            return held
        member.sources += [read.source(ctx, t.id) for t in twins]
        outcome.assets = sum(len(m.sources) for m in members)
        for facts in member.sources:
            current = journal.Claim.of(facts.marker(journal.CLAIM_KEY))
            if current is not None and ctx.clock.time() < current.until:
                return Decision(Action.SKIP, skip=Skip.CLAIMED)
    if decision.action is Action.FINISH:
        for member in members:
            entry = member.source.marker()
            if not journal.journal_matches(entry, member.source.asset):
                continue
            member.target_id, member.created = entry["target"], bool(entry.get("created"))
            _, _, conflicts = carry.expectation(ctx, member, identity(members))
            if conflicts:
                return Decision(Action.HOLD, hold=Hold.CONFLICT, details=tuple(str(c) for c in conflicts))
    return decision


def _label(outcome: Outcome) -> str:
    if outcome.kind is Kind.SKIPPED:
        return f"skip ({outcome.reason})"
    if outcome.kind is Kind.HELD:
        return f"hold ({outcome.reason})"
    return outcome.kind.value


def _album_map(runner: Runner) -> dict[str, set[str]]:
    """asset id -> album ids, for the plan's totals, from each album's members in these libraries."""
    out: dict[str, set[str]] = {}
    for keyholder in runner.crew.keyholders:
        client = keyholder.session.client
        for album in client.albums():
            for library in keyholder.libraries:
                for asset in client.iter_assets(with_exif=False, albumIds=[album.id], libraryId=library.id):
                    out.setdefault(asset.id, set()).add(album.id)
    return out

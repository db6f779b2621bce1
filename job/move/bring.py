"""Bringing the bytes: make sure an internal asset of the user holds exactly a source's bytes, and prove
it (SHA-1 and size). Safe to repeat: an upload of bytes Immich already has answers "duplicate", and a
journal written by an earlier run names the target without a new transfer."""

from __future__ import annotations

from job import journal
from job.clock import seconds
from job.immich import errors
from job.immich.models import Asset
from job.move.context import Member, RunContext, StepFailed
from job.move.rules import disproof
from job.move.verify import extracted
from job.outcome import Stage
from job.transfer import Transferred, stream_to_upload, with_retries


def from_journal(ctx: RunContext, member: Member, *states: journal.State) -> Asset | None:
    """The target an earlier run's journal names, still proven to hold the bytes (reads only): fills in
    `member` from it. None when there is no such journal, or its target no longer proves."""
    source = member.source
    entry = source.marker()
    if not journal.journal_matches(entry, source.asset) or journal.state_of(entry) not in states:
        return None
    target = _journal_target(ctx, entry)
    if target is not None:
        member.target_id, member.sha1, member.size = target.id, entry["sha1"], entry["size"]
        member.created, member.earlier, member.etag = bool(entry.get("created")), True, entry.get("etag")
        member.made_before = True
        member.marker = None if member.created else _marker_of(ctx, target.id)
    return target


def bring(ctx: RunContext, member: Member, expected: dict | None = None) -> None:
    """Fill in `member`'s target and the proof of its bytes. `expected`: what a new target must hold (the
    source's record, as JSON), sent with the upload in its provenance."""
    source = member.source
    target = from_journal(ctx, member, journal.State.COPIED, journal.State.KEPT, journal.State.HELD,
                          journal.State.TRASHED)  # (trashed: back from the trash; the gate hashes it again)
    if target is not None:
        restore_if_trashed(ctx, target, member)
        return

    def attempt() -> Transferred:
        return stream_to_upload(ctx.client, source.asset, visibility=source.asset.visibility,
                                live_photo_video_id=member.live_target, on_bytes=ctx.on_bytes,
                                marker=journal.upload_provenance(source.asset, ctx.clock.time(), ctx.run_id),
                                marker_extra={"expected": expected} if expected is not None else None)

    try:
        sent = with_retries(attempt, ctx.settings.transfer_retries, ctx.clock, stop=ctx.hard_stop.is_set)
    except errors.TruncatedTransfer as exc:
        raise StepFailed(Stage.DOWNLOAD, str(exc)) from None
    member.target_id, member.sha1, member.size, member.etag = sent.result.id, sent.sha1, sent.size, sent.etag
    member.transferred, member.proven_at, member.sent_expected = True, ctx.clock.monotonic(), expected
    if sent.result.status == "created":
        # Immich computed the new asset's checksum from the very bytes we hashed: the first verify read
        # proves it (checksum and size) before anything is deleted.
        member.created, member.fresh, member.provenance = True, True, sent.provenance
        return
    target = ctx.client.asset(sent.result.id)
    problem = disproof(target, sent.sha1, sent.size, ctx.scope.user_id, source.asset)
    if problem:
        raise StepFailed(Stage.PROVE, problem)
    member.marker = _marker_of(ctx, target.id)
    member.made_before = True
    member.created = journal.made_for(member.marker, member.ids)
    if not member.created and journal.half_made(member.marker, member.since, target.createdAt, extracted(target),
                                                ctx.settings.claim_margin):
        # the job's own upload, cut short by Immich restarting: its provenance and metadata job were lost
        # (phase two asks Immich to read it before anything is carried to it: verify.await_read)
        member.created = True
    if member.created:
        member.marker = None
    restore_if_trashed(ctx, target, member)


def intents(ctx: RunContext, members: list[Member]) -> list[tuple[str, str, dict]]:
    """The upload intents written with the unit's claim (journal.intent), one per file whose bytes may
    be uploaded now; fills in each member's `since`."""
    writes = []
    for member in members:
        source = member.source
        entry = source.marker()
        member.since = journal.upload_since(entry, source.asset)
        if member.since is None:
            value = journal.intent(entry, source.asset, ctx.clock.time(), ctx.run_id)
            if value is not None:
                member.since = seconds(value["since"])
                writes.append((source.asset.id, journal.KEY, value))
    return writes


def _journal_target(ctx: RunContext, entry: dict) -> Asset | None:
    try:
        target = ctx.client.asset(entry["target"])
    except errors.NotFound:
        return None
    return None if disproof(target, entry["sha1"], entry["size"], ctx.scope.user_id) else target


def _marker_of(ctx: RunContext, target_id: str) -> dict | None:
    return journal.value_of(ctx.client.metadata_of(target_id))


def restore_if_trashed(ctx: RunContext, target: Asset, member: Member) -> None:
    """A duplicate in the trash would vanish when the trash is emptied: the photo was visible as an
    external asset, so it must stay visible. The move restores it once nothing holds the unit (phase two,
    `restore`), so that a held unit leaves the trash as it was; its provenance then says so (an undo puts
    it back)."""
    member.in_trash = target.isTrashed


def restore(ctx: RunContext, member: Member) -> None:
    if member.in_trash:
        ctx.client.restore([member.target_id])
        member.in_trash, member.restored = False, True


def reimport_loop(ctx: RunContext, member: Member) -> bool:
    """Immich re-imports a file it could not delete (read-only mount) as a new external asset. Its
    bytes then land on a target whose marker already names the same path and library."""
    if member.created:
        return False
    src = member.source.asset
    for entry in (member.marker or {}).get("sources", []):
        if entry.get("source") != src.id and entry.get("path") == src.originalPath and entry.get("library") == src.libraryId:
            try:
                if not ctx.client.asset(entry["source"]).isTrashed:
                    continue  # both still exist: two assets, not a loop
            except errors.NotFound:
                pass
            return True
    return False


def journal_writes(ctx: RunContext, members: list[Member], state: journal.State) -> list[tuple[str, str, dict]]:
    """The journal of every source of `members`, as key/value writes."""
    return [(f.asset.id, journal.KEY, journal.journal(state, target=m.target_id, sha1=m.sha1, size=m.size,
                                                      created=m.created, source=f.asset, at=ctx.clock.time(),
                                                      etag=m.etag, run=ctx.run_id))
            for m in members if m.target_id for f in m.sources]


def write_journals(ctx: RunContext, members: list[Member], state: journal.State) -> None:
    """Journal every source of `members`: a later run finishes from here without a new transfer."""
    writes = journal_writes(ctx, members, state)
    if not writes:
        return
    stored = ctx.client.upsert_metadata(writes, bulk=ctx.caps.bulk_metadata)
    if ctx.caps.bulk_metadata and not {(a, k) for a, k, _ in writes} <= {(s.assetId, s.key) for s in stored}:
        raise StepFailed(Stage.CARRY, "Immich did not store the journal")


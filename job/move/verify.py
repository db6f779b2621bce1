"""Settling and verifying: read the target until it holds the proven bytes and covers what it must,
writing what is missing. Immich extracts metadata and re-reads a copied sidecar in the background, so a
value read right after a write can still change: the target must stay whole before its sources go."""

from __future__ import annotations

import logging
from dataclasses import replace

from job.facts import Facts
from job.immich import errors
from job.immich.models import Asset
from job.move import read
from job.move import faces
from job.move.carry import copy
from job.move.rules import disproof
from job.move.context import Identity, Member, RunContext, StepFailed, Waiting
from job.outcome import Stage
from job.record import Difference, differences, record_of
from job.writes import Write, WriteKind, writes_for

log = logging.getLogger("ext2int")


def settle_and_verify(ctx: RunContext, member: Member, ids: Identity) -> None:
    """Read the target until it covers `member.expected`. Missing pieces are written (once per kind of
    difference), then re-read. A target still incomplete after EXT2INT_SETTLE_TIMEOUT waits for a later
    run; a wrong one fails the unit.

    When the job wrote anything itself, a target that covers is read once more EXT2INT_SETTLE_CONFIRM
    later. Seen on a real Immich 3.1: a metadata extraction still running when tags were added (it had
    read the file before) replaced them with the file's, after they had shown; Immich's sidecar write
    then saved the empty list. A write undone that way is made again (twice at most); the sources go
    only once the target has stayed whole."""
    settings, clock = ctx.settings, ctx.clock
    deadline = clock.monotonic() + settings.settle_timeout
    ask_at = clock.monotonic() + settings.settle_timeout / 2  # Immich reads a new asset within seconds, normally
    delay, waited, applied = 0.25, 0.0, set()
    confirm_at: float | None = None  # when a target that covers after our writes is looked at again
    last_write, redone = 0.0, 0
    seen: Asset | None = None  # the asset as await_sidecar read it a moment ago, whole: not read again
    while True:
        # the rest only once Immich has read the file: no reads while waiting
        asset = seen if seen is not None else ctx.client.asset(member.target_id)
        seen = None
        prove(ctx, member, asset)
        ctx.saw_internal(asset)
        target = read.target(ctx, member.target_id, member.sources, asset=asset) if extracted(asset) else Facts(asset)
        if extracted(asset):
            now = record_of(target, ids.target)
            found = differences(member.expected, now)
            if not found:
                if not applied or (confirm_at is not None and clock.monotonic() >= confirm_at):
                    member.verified = asset
                    return
                if ctx.hard_stop.is_set():
                    raise Waiting("stopping before the job's own writes to the new asset were confirmed")
                if confirm_at is None:
                    confirm_at = clock.monotonic() + settings.settle_confirm
                ctx.sleep(max(0.0, confirm_at - clock.monotonic()))
                continue
            confirm_at = None
            if applied and clock.monotonic() - last_write >= settings.settle_confirm and redone < 2:
                redone += 1  # a write that did not hold (or never showed): Immich undid it; make it again
                applied.clear()
            if not applied:
                seen = await_sidecar(ctx, member, target, ids, found, deadline)
                if seen is not None:
                    continue  # Immich read the copied sidecar meanwhile: look at the whole target again
            todo = [w for w in writes_for(member.expected, now, member.sources,
                                          can_copy=ctx.caps.copy, can_edit=ctx.caps.edits)
                    if w.kind not in applied]
            if todo:
                apply(ctx, todo, member, target)
                applied.update(w.kind for w in todo)
                last_write = clock.monotonic()
                continue
        if not extracted(asset) and ask_at is not None and clock.monotonic() >= ask_at:
            ask_at = None
            ask_to_read(ctx, member)
        if clock.monotonic() >= deadline or ctx.hard_stop.is_set():
            raise _unfinished(member, target, ids)
        ctx.sleep(delay)
        # Immich usually reads a new asset within a second or two: look often at first (this wait holds
        # no transfer slot), then less often
        waited += delay
        delay = 0.25 if waited < 4 else min(delay * 1.5, 3.0)


# What Immich reads from an XMP sidecar (metadata.service.ts: description, dates and time zone, GPS,
# rating, TagsList): the values a copied sidecar may still bring to a new target.
SIDECAR_FIELDS = frozenset({"description", "rating", "taken_at", "time_zone", "gps", "tags"})


def await_sidecar(ctx: RunContext, member: Member, target: Facts, ids: Identity, found: list[Difference],
                  deadline: float) -> Asset | None:
    """A new target lacks only values a sidecar carries, and the source's sidecar was copied to it a
    moment ago: Immich reads a copied sidecar in a second metadata extraction, which usually brings
    them. Writing them now would cost the server a sidecar write and two more extractions per value,
    and a confirmation wait. So look at the asset alone (it holds all those values) until they show,
    for at most EXT2INT_SETTLE_CONFIRM after the copy. Returns the asset read when they did (write
    nothing; the caller compares the whole target with this read, not another), None when the job must
    write them (a source without a sidecar, a read-only library)."""
    clock, settings = ctx.clock, ctx.settings
    if member.sidecar_at is None or not found or any(d.field not in SIDECAR_FIELDS for d in found):
        return None
    until = min(member.sidecar_at + settings.settle_confirm, deadline - settings.settle_confirm)
    delay = 0.25
    while clock.monotonic() < until and not ctx.hard_stop.is_set():
        ctx.sleep(min(delay, max(0.0, until - clock.monotonic())))
        delay = min(delay * 2, 1.0)
        asset = ctx.client.asset(member.target_id)
        prove(ctx, member, asset)
        if not differences(member.expected, record_of(replace(target, asset=asset), ids.target)):
            return asset
    member.sidecar_at = None  # waited once: from now on the job writes what is missing
    return None


def await_read(ctx: RunContext, member: Member) -> None:
    """A copy made by an earlier attempt (a half-made upload, or a journal's): nothing is carried to it
    (no album shows it beside its source) until Immich has read it. One look when it has; when not, Immich
    is asked to read it at once (its metadata job was most likely lost with a restart), then looked at
    until EXT2INT_SETTLE_TIMEOUT: still unread, the unit waits, and a later run asks again."""
    deadline = ctx.clock.monotonic() + ctx.settings.settle_timeout
    delay, asked = 0.25, False
    while True:
        asset = ctx.client.asset(member.target_id)
        prove(ctx, member, asset)
        if extracted(asset):
            return
        if not asked:
            ask_to_read(ctx, member)
            asked = True
        elif ctx.clock.monotonic() >= deadline or ctx.hard_stop.is_set():
            raise Waiting("Immich has not read the job's own copy made by an earlier attempt (an upload cut short), "
                          "even when asked to: nothing was carried to it yet; a later run asks again")
        ctx.sleep(delay)
        delay = min(delay * 1.5, 3.0)


def ask_to_read(ctx: RunContext, member: Member) -> None:
    """A new asset Immich has not read after half of EXT2INT_SETTLE_TIMEOUT was most likely never queued
    (an upload cut short by Immich restarting: the row exists, its jobs were lost), and would wait for
    ever: ask Immich to read its metadata again (what its "Refresh metadata" button does)."""
    try:
        ctx.client.refresh_metadata([member.target_id])
    except (errors.PermissionMissing, errors.Forbidden):
        log.warning("Immich has not read the new asset %s for %s; the API key lacks job.create to ask it to "
                    "(Refresh metadata in Immich does it)", member.target_id, member.source.asset.originalPath)


def prove(ctx: RunContext, member: Member, target: Asset) -> None:
    """The target holds the bytes we hashed, or the unit fails. A fresh upload that does not is left as
    it is and named: it may not even be ours (a proxy or a bug answering with another asset's id), and
    the job deletes nothing but its own sources."""
    problem = disproof(target, member.sha1, member.size, ctx.scope.user_id)
    if problem:
        if member.fresh:
            raise StepFailed(Stage.PROVE, f"{problem}; the upload's answer named internal asset {member.target_id}, "
                                          "which was left untouched: check it in Immich")
        raise StepFailed(Stage.VERIFY, problem)
    member.fresh = False


def extracted(asset: Asset) -> bool:
    """Immich fills dateTimeOriginal when it has read the file's metadata (from the file's own dates,
    or its modification time when it has none): before that, comparing would compare nothing."""
    return asset.exifInfo is not None and asset.exifInfo.dateTimeOriginal is not None


def _unfinished(member: Member, target: Facts, ids: Identity) -> Exception:
    if not extracted(target.asset):
        return Waiting("Immich has not read the new asset's metadata yet, even when asked to again: a later run "
                       "looks again (and asks again)")
    found = differences(member.expected, record_of(target, ids.target))
    if {d.field for d in found} == {"faces"}:
        return Waiting("waiting for Immich's face detection on the new asset")
    return StepFailed(Stage.VERIFY, "the internal asset does not hold everything the external one had",
                      [f"{member.source.asset.originalFileName}: {d}" for d in found])


def apply(ctx: RunContext, writes: list[Write], member: Member, target: Facts) -> None:
    """Each write of what the target still lacks as Immich calls (settle_and_verify's). A kind without a
    case here is a bug, and says so."""
    c, tid = ctx.client, member.target_id
    for w in writes:
        kind, args = w.kind, w.args
        if kind is WriteKind.COPY:
            copy(ctx, member, args, sidecar=False)  # carry copied the sidecar: a second copy re-extracts again
        elif kind is WriteKind.ADD_ALBUMS:
            c.add_to_albums(args["album_ids"], [tid])
        elif kind is WriteKind.ADD_SHARED_LINKS:
            for link in args["link_ids"]:
                c.add_to_shared_link(link, [tid])
        elif kind is WriteKind.JOIN_STACK:
            primary = args["primary_id"]
            c.create_stack([primary, tid] if primary != tid else [tid, member.source.asset.id])
        elif kind is WriteKind.SET_FIELDS:
            c.update_assets([tid], **args)
        elif kind is WriteKind.ADD_TAGS:
            if args["tag_ids"]:
                c.tag_assets(args["tag_ids"], [tid])
        elif kind is WriteKind.LINK_LIVE_VIDEO:
            if member.live_target:
                c.link_live_video(tid, member.live_target)
        elif kind is WriteKind.MAKE_STACK_PRIMARY:
            stack = c.asset(tid).stack
            if stack and stack.primaryAssetId != tid:
                c.set_stack_primary(stack.id, tid)
        elif kind is WriteKind.SET_EDITS:
            c.set_edits(tid, args["edits"])
        elif kind is WriteKind.PUT_METADATA:
            if args["items"]:
                c.upsert_metadata([(tid, k, v) for k, v in args["items"]], bulk=ctx.caps.bulk_metadata)
        elif kind is WriteKind.SET_COVERS:
            for album in args["album_ids"]:
                c.set_album_cover(album, tid)
        elif kind is WriteKind.ADD_FACES:
            faces.reconcile(ctx, member, target)
        else:
            raise AssertionError(f"no way to apply a write of kind {kind}")

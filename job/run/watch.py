"""The trash watch: the instant the gate cannot prove, proven afterwards, while Immich's trash still holds
the source.

The gate re-proves everything right before its delete request, but Immich has no conditional delete: a
file replaced on disk, or a description, rating, tag or album added to the source in the instant between
the gate's last read and the delete, is trashed with the source. Immich purges the trash after its trash
days, and the purge deletes the file. So every run (before it lists anything) and `verify` look again at
the sources the job trashed (the gate journals each as `trashed`, with the target and the proven bytes):

- fresh ones (trashed within EXT2INT_TRASH_WATCH_WINDOW) are proven whole once: the file is still the
  moved bytes (its ETag, hashed again when it differs), and what the user curated on the source is covered
  by what the target was verified to hold (the `expected` of its provenance); then their journal says
  `watched`;
- those the purge takes within the window are proven again, file only (a sync tool may rewrite a file
  days after its move).

A source that fails is restored from the trash, with the assets that must go with it (its path twins,
its live video, the files that read the same sidecar), and its journal says `copied` again: a file that
changed is then held (the gate hashes it) until Immich's next scan makes the new bytes a new version,
which moves; new curation is carried by the same run's move, which proves it and trashes the source
again. Each restore is one line in the report. `verify` says what it would restore and changes nothing.

Cost, per run: one listing page per library and window, then one metadata read per source in a window,
and for a fresh one its albums, asset and the target's provenance, and a HEAD of the original: bounded by
the sources trashed within the windows, not by the size of the trash.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field

from job import journal, ledger
from job.immich import errors
from job.immich.models import Asset
from job.move import read
from job.move.context import RunContext
from job.move.rules import trash_verdict
from job.paths import stem_of
from job.record import SELF, record_of
from job.report import Report
from job.settings import Settings
from job.transfer import hash_original

log = logging.getLogger("ext2int")

DAY = 86400.0


@dataclass
class Watch:
    """What one user's watch saw and did."""

    looked: int = 0  # trashed sources of the job's, looked at
    proven: int = 0  # fresh ones proven whole
    checked: int = 0  # ones near the purge whose file was checked again
    restored: list[str] = field(default_factory=list)  # one line per source restored (or, in verify, to restore)
    problems: list[str] = field(default_factory=list)


def watch_trash(keyholders: list, ctxs: dict[str, RunContext], settings: Settings, report: Report, *,
                restore: bool) -> None:
    """Every user's watch, before a run lists anything (`restore`), or in `verify` (say only); the report
    counts what it saw and each restore is a note."""
    if settings.trash_watch <= 0 or not keyholders:
        return
    lead = ctxs[keyholders[0].user_id]
    if not lead.caps.trash:
        return  # nothing stays in a trash that is turned off (the run says so)
    try:
        days = lead.client.trash_days()
    except errors.ImmichError as exc:
        report.notes.append(f"the trash watch could not read Immich's trash days ({exc}): it looks next run")
        return
    total = Watch()
    for keyholder in keyholders:
        try:
            seen = watch(ctxs[keyholder.user_id], [lib.id for lib in keyholder.libraries], trash_days=days,
                         window=settings.trash_watch, restore=restore)
        except errors.ImmichError as exc:
            report.notes.append(f"the trash watch stopped for {keyholder.name}: {exc}; the next run looks again")
            continue
        total.looked, total.proven, total.checked = (total.looked + seen.looked, total.proven + seen.proven,
                                                     total.checked + seen.checked)
        total.restored += seen.restored
        total.problems += seen.problems
    report.trash = {"looked": total.looked, "proven": total.proven, "checked": total.checked,
                    "restored": len(total.restored), "trashDays": days}
    report.notes += total.restored + total.problems
    gap = _schedule_gap(settings, days)
    if gap:
        report.notes.append(gap)
        log.warning("%s", gap)


def _schedule_gap(settings: Settings, days: int) -> str:
    """A schedule whose runs are further apart than the watch's window (or the trash days) lets a change
    made at the moment of a delete go unseen until Immich purges it."""
    if not settings.schedule:
        return ""
    from job.schedule import cron_trigger, next_fire_times

    times = next_fire_times(cron_trigger(settings.schedule, settings.timezone), count=2)
    if len(times) < 2:
        return ""
    interval = (times[1] - times[0]).total_seconds()
    if interval > days * DAY:
        return (f"EXT2INT_SCHEDULE runs every {interval / 3600:.0f} h, longer than Immich keeps trashed assets "
                f"({days} days): the trash watch cannot see every moved source before Immich purges it")
    if interval > settings.trash_watch:
        return (f"EXT2INT_SCHEDULE runs every {interval / 3600:.0f} h, longer than EXT2INT_TRASH_WATCH "
                f"({settings.trash_watch / 3600:.0f} h): set EXT2INT_TRASH_WATCH to at least the time between runs")
    return ""


def watch(ctx: RunContext, libraries: Iterable[str], *, trash_days: float, window: float, restore: bool) -> Watch:
    """Look at the user's sources in the trash of `libraries` (see the module's doc); `restore` False
    (verify) only says what it would restore."""
    seen = Watch()
    if window <= 0 or trash_days <= 0:
        return seen
    now = ctx.clock.time()
    fresh_after = now - window
    due_after, due_before = now - trash_days * DAY, now - trash_days * DAY + window
    listed: dict[str, Asset] = {}
    for library in libraries:
        for after, before in ((fresh_after, None), (due_after, due_before)):
            for asset in ctx.client.iter_assets(with_exif=False, with_deleted=True, libraryId=library,
                                                trashedAfter=journal.stamp(after),
                                                trashedBefore=journal.stamp(before) if before else None):
                if asset.isTrashed and asset.is_external:
                    listed[asset.id] = asset
    failing: dict[str, str] = {}
    entries: dict[str, dict] = {}
    watched: list[tuple[str, str, dict]] = []
    for asset in listed.values():
        try:
            reason, entry, etag = _look(ctx, asset, seen)
            if entry is not None:
                entries[asset.id] = entry
        except (errors.ImmichError, errors.TruncatedTransfer) as exc:
            seen.problems.append(f"{asset.originalPath}: could not be looked at in the trash ({exc}); the next run "
                                 "looks again")
            continue
        if reason:
            failing[asset.id] = reason
        elif entry is not None and not entry.get("watched"):
            # the same bytes under a new ETag (a touched file) are hashed once, not on every look
            watched.append((asset.id, journal.KEY, {**entry, "watched": journal.stamp(now), "etag": etag}))
    if watched and restore:
        try:
            ctx.client.upsert_metadata(watched, bulk=ctx.caps.bulk_metadata)
        except errors.ImmichError as exc:
            seen.problems.append(f"could not mark {len(watched)} trashed source(s) as watched ({exc}): the next run "
                                 "proves them again")
    if failing:
        _restore(ctx, {i: a for i, a in listed.items() if i in entries}, entries, failing, seen, restore)
    return seen


def _look(ctx: RunContext, asset: Asset, seen: Watch) -> tuple[str, dict | None, str | None]:
    """Why this trashed source must come back ('' when it holds), its journal (None: not the job's), and
    its file's ETag now."""
    c = ctx.client
    items = tuple(c.metadata_of(asset.id))
    entry = journal.value_of(items)
    if journal.state_of(entry) is not journal.State.TRASHED:
        return "", None, None
    seen.looked += 1
    etag = c.original_etag(asset.id)
    hashed = hash_original(c, asset) if etag is None or etag != entry.get("etag") else None
    fresh = not entry.get("watched")
    now_record = expected = None
    if fresh:
        facts = read.source(ctx, asset.id, metadata=items)  # its key/values were just read
        now_record = record_of(facts, {asset.id: SELF})
        marker = journal.value_of(c.metadata_of(str(entry.get("target"))))
        expected = ledger.from_json((marker or {}).get("expected"))
    reason = trash_verdict(entry, hashed, now_record, expected)
    if not reason:
        if fresh:
            seen.proven += 1
        else:
            seen.checked += 1
    return reason, entry, etag or entry.get("etag")


def _restore(ctx: RunContext, listed: dict[str, Asset], entries: dict[str, dict], failing: dict[str, str], seen: Watch,
             restore: bool) -> None:
    """Each failing source back from the trash, with what must go with it, and its journal `copied`."""
    going = set(failing)
    for asset_id in list(failing):
        going |= _companions(ctx, listed[asset_id], listed)
    for asset_id in sorted(going, key=lambda i: listed[i].originalPath):
        why = failing.get(asset_id) or "it goes with another source restored now (the same file, its live photo, or "\
                                        "the same sidecar)"
        done = "restored from the trash" if restore else "to restore from the trash (the next run does it)"
        seen.restored.append(f"{done}: {listed[asset_id].originalPath}: {why}")
    if not restore:
        return
    ids = sorted(going)
    ctx.client.restore(ids)
    at = journal.stamp(ctx.clock.time())
    ctx.client.upsert_metadata([(i, journal.KEY, {**entries[i], "state": journal.State.COPIED.value, "restored": at})
                                for i in ids], bulk=ctx.caps.bulk_metadata)
    for line in seen.restored:
        log.warning("%s", line)


def _companions(ctx: RunContext, asset: Asset, listed: dict[str, Asset]) -> set[str]:
    """The trashed sources that must come back with `asset`: the same file under any of its names (a path
    twin), its live video, and the files beside it that may read the same XMP sidecar."""
    names = set(ctx.scope.names(asset.originalPath))
    folder, stem = posixpath.dirname(asset.originalPath), stem_of(asset.originalPath)
    out = set()
    for other in listed.values():
        if other.id == asset.id:
            continue
        if (other.originalPath in names or other.id == asset.livePhotoVideoId or other.livePhotoVideoId == asset.id
                or (posixpath.dirname(other.originalPath) == folder and stem_of(other.originalPath) == stem)):
            out.add(other.id)
    return out

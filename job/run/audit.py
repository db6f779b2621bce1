"""`verify`: prove again, months later, what a move proved. Read-only, like `plan` (the transport refuses
every changing request).

For every internal asset that carries the job's provenance (of the selected libraries' sources; of one
run with EXT2INT_VERIFY_RUN): its bytes are still the ones moved (checksum and size against the marker;
with EXT2INT_VERIFY_HASH, the original downloaded and hashed again, for a share of the assets or all),
and it still holds the record the move verified (`expected` in the marker). A difference of curation is
reported as a change since the move (a user may have edited it on purpose), not as damage; bytes that
differ, or a copy that is gone, are damage (exit code 1).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from collections.abc import Iterator

from job.commands import Command
from job import journal, ledger
from job.facts import Facts
from job.immich import errors
from job.immich.models import Asset
from job.move.context import RunContext
from job.outcome import Outcome
from job.record import LIVE, SELF, Record, differences, record_of
from job.report import Report
from job.run.recorder import Recorder
from job.run.runner import Runner
from job.run.watch import watch_trash
from job.transfer import hash_original

log = logging.getLogger("ext2int")


def verify(runner: Runner) -> Report:
    settings = runner.settings
    report = runner.new_report(Command.VERIFY)
    ctxs = runner.contexts("verify", report, None, links=False)
    record = Recorder(report, runner.observer, runner.halt)
    watch_trash(runner.crew.keyholders, ctxs, settings, report, restore=False)  # says what a run would restore
    for keyholder in runner.crew.keyholders:
        ctx = ctxs[keyholder.user_id]
        found = list(copies(ctx, keyholder.libraries, str(settings.run_id) if settings.run_id else None))
        moved = {e.get("source"): target.id for target, marker in found for e in marker["sources"]}
        for target, marker in found:
            if runner.stop.is_set():
                report.stopped_because = runner.stop_reason
                break
            sources = marker["sources"]
            outcome = Outcome.of_copy({**sources[0], "source": target.id}, len(sources), target.id)
            try:
                prove(ctx, target, marker, outcome, rehash=_chosen(target.id, settings.verify_hash), moved=moved)
            except errors.ImmichError as exc:
                outcome.damaged(f"could not be read: {exc}")
            record(outcome)
    report.notes.append("assets moved by this job carry its provenance (asset metadata key immich-ext2int); a copy "
                        "whose provenance a user removed is not found")
    report.finish()
    return report


def copies(ctx: RunContext, libraries, run: str | None) -> Iterator[tuple[Asset, dict]]:
    """Every internal asset of the user that carries the job's provenance for a source of `libraries` (of
    `run`), read whole, with its provenance: one metadata read per internal asset of the user."""
    selected = {lib.id for lib in libraries}
    for listed in ctx.client.iter_assets(size=1000, with_exif=False):
        if listed.libraryId is not None:
            continue
        marker = journal.value_of(ctx.client.metadata_of(listed.id))
        sources = (marker or {}).get("sources") or []
        if not any(s.get("library") in selected and (run is None or s.get("run") == run) for s in sources):
            continue
        yield ctx.client.asset(listed.id), marker  # a search item lacks tags and stack: the asset itself


def prove(ctx: RunContext, target: Asset, marker: dict, outcome: Outcome, rehash: bool,
          moved: dict[str, str] | None = None) -> None:
    """The verdict on one internal copy, in `outcome`. `moved`: source id -> its copy, for the assets the
    job moved: a stack's other member moved after this one is now its copy."""
    sources = marker["sources"]
    sha1, size = sources[-1].get("sha1"), sources[-1].get("size")
    if target.isTrashed:
        outcome.changed("the internal copy is in the trash (moved there since the move)")
        return
    found_size = target.exifInfo.fileSizeInByte if target.exifInfo else None
    if target.checksum != sha1 or (found_size is not None and found_size != size):
        outcome.damaged("its bytes are not the ones moved",
                        [f"checksum {target.checksum} size {found_size}, moved {sha1} size {size}"])
        return
    if rehash:
        hashed = hash_original(ctx.client, target)
        if hashed != (sha1, size):
            outcome.damaged("its original file does not hash to the bytes moved",
                            [f"hashed {hashed[0]} size {hashed[1]}, moved {sha1} size {size}"])
            return
    expected = ledger.from_json(marker.get("expected"))
    if expected is not None and expected.stack is not None and moved:
        expected = replace(expected, stack=replace(expected.stack, others=frozenset(
            moved.get(o, o) for o in expected.stack.others)))
    if expected is None:
        outcome.verified("bytes only: moved by a version that did not record the curation it carried")
        return
    now = record_of(read_whole(ctx, target, expected), identity_of(target, expected))
    changed = ledger.changes(expected, now)
    if changed:
        lost = bool(differences(expected, now))
        outcome.changed("its curation changed since the move: some of what was moved is no longer there (an edit in "
                        "Immich?)" if lost else "its curation changed since the move (an edit in Immich)", changed)
    else:
        outcome.verified("bytes hashed again and curation hold" if rehash else "bytes and curation hold")


def read_whole(ctx: RunContext, target: Asset, expected: Record) -> Facts:
    """The target with every kind of curation `expected` speaks of."""
    c = ctx.client
    albums = c.albums(target.id) if expected.albums is not None else None
    metadata = tuple(c.metadata_of(target.id)) if expected.metadata is not None else None
    faces = tuple(c.faces_of(target.id)) if expected.faces is not None else None
    edits = tuple(c.edits_of(target.id)) if expected.edits is not None and ctx.caps.edits else None
    stack = c.stack(target.stack.id) if target.stack is not None and expected.stack is not None else None
    links = None
    if expected.shared_links:
        links = frozenset(link for link in expected.shared_links
                          if any(a.id == target.id for a in c.shared_link(link).assets))
    return Facts(asset=target, albums=tuple(albums) if albums is not None else None, metadata=metadata, faces=faces,
                 edits=edits, stack=stack, shared_links=links if links is not None else
                 (frozenset() if expected.shared_links is not None else None))


def identity_of(target: Asset, expected: Record) -> dict[str, str]:
    """Tokens to read a target's record with, as the move compared it: itself, and its moved video."""
    tokens = {target.id: SELF}
    if expected.live_video == LIVE and target.livePhotoVideoId:
        tokens[target.livePhotoVideoId] = LIVE
    return tokens


def _chosen(asset_id: str, share: float) -> bool:
    """Is this asset's original hashed again? The same assets on every verify with the same share."""
    if share >= 1.0:
        return True
    if share <= 0.0:
        return False
    return int(hashlib.sha1(asset_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share

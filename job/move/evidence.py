"""The evidence the delete gate judges, read at the moment of deletion: each source again (its whole
curated record and our claim), each target, each file's ETag (and its bytes hashed again when the proof
is old), who else holds the file, and which stills use a video that goes. Only reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from job.decide import FileView, Scope, file_holds
from job.facts import Facts
from job.immich import errors
from job.immich.models import Asset
from job.move import read
from job.move.context import Member, Pending, RunContext
from job.transfer import hash_original


@dataclass
class FileNow:
    etag: str | None  # as served now
    hashed: tuple[str, int] | None  # the bytes hashed again now, when that was needed
    view: FileView  # what the libraries say about the file
    found: list[Asset] | None  # the user's live assets at the path, when looked up
    partners: list[Asset] = field(default_factory=list)  # other users' live assets of the file, in libraries this run moves


@dataclass
class Evidence:
    sources: dict[str, Facts | None] = field(default_factory=dict)  # None: gone
    targets: dict[str, Asset | None] = field(default_factory=dict)
    files: list[FileNow] = field(default_factory=list)  # one per member
    stills_of: dict[str, list[Asset]] = field(default_factory=dict)  # video going -> stills linking to it


def gather(ctx: RunContext, pending: Pending, scope: Scope,
           others: Callable[[str], RunContext] | None = None) -> Evidence:
    """`others`: another user's context, to read their assets of a shared file with their own key."""
    evidence = Evidence()
    for member in pending.members:
        for source_id in member.ids:
            try:
                evidence.sources[source_id] = read.source(ctx, source_id)
            except errors.NotFound:
                evidence.sources[source_id] = None
        evidence.targets[member.target_id] = read.maybe_asset(ctx, member.target_id)
        evidence.files.append(_file_now(ctx, member, scope, others))
    for member in pending.members:
        if member.role == "video" and ctx.live_stills is not None:
            for source_id in member.ids:
                evidence.stills_of[source_id] = ctx.live_stills().get(source_id, [])
    return evidence


def _file_now(ctx: RunContext, member: Member, scope: Scope, others: Callable[[str], RunContext] | None) -> FileNow:
    source = member.source.asset
    etag = ctx.client.original_etag(source.id)
    stale = member.earlier or ctx.clock.monotonic() - member.proven_at > ctx.settings.rehash_after
    hashed = hash_original(ctx.client, source) if stale or etag is None or etag != member.etag else None
    view = file_holds(source.originalPath, source.libraryId, scope)
    found = ctx.client.assets_at(source.originalPath) if view.hold is None and view.look_up else None
    partners = []
    if view.hold is None and view.partners:
        assert others is not None, "a file shared with another user's library, in a run without their context"
        libraries = {lib.id: lib.ownerId for lib in view.partners}
        for owner in sorted(set(libraries.values())):
            partners += [a for a in others(owner).client.assets_at(source.originalPath)
                         if libraries.get(a.libraryId) == owner and a.originalPath == source.originalPath
                         and not a.isTrashed and not a.isOffline]
    return FileNow(etag, hashed, view, found, partners)

"""The evidence the delete gate judges, read at the moment of deletion: each source again (its whole
curated record and our claim), each target, each file's ETag (and its bytes hashed again when the proof
is old), who else holds the file under any of its names, who else may read its XMP sidecar, and which
stills use a video that goes. Only reads."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field

from job.decide import Decision, FileView, Scope, file_holds, sidecar_readers
from job.facts import Facts
from job.immich import errors
from job.immich.models import Asset
from job.move import read
from job.move.context import Member, Pending, RunContext
from job.paths import share_sidecar, stem_of
from job.transfer import hash_original


@dataclass
class FileNow:
    etag: str | None  # as served now
    hashed: tuple[str, int] | None  # the bytes hashed again now, when that was needed
    view: FileView  # what the libraries say about the file
    found: list[Asset] | None  # the user's live assets of the file (any of its names); None when held already
    partners: list[Asset] = field(default_factory=list)  # other users' live assets of the file, in libraries this run moves
    names: tuple[str, ...] = ()  # the file's path, and its other names
    siblings: list[Asset] = field(default_factory=list)  # live assets of other files that may read the same sidecar
    sidecar_hold: Decision | None = None  # another user's library, not moved by this run, may read its sidecar
    files_beside: tuple[str, ...] = ()  # where the job sees the folder: the other files there that may read it


@dataclass
class Evidence:
    sources: dict[str, Facts | None] = field(default_factory=dict)  # None: gone
    targets: dict[str, Asset | None] = field(default_factory=dict)
    files: list[FileNow] = field(default_factory=list)  # one per member
    stills_of: dict[str, list[Asset]] = field(default_factory=dict)  # video going -> stills linking to it


def gather(ctx: RunContext, pending: Pending, scope: Scope,
           others: Callable[[str], RunContext] | None = None, albums_held: bool = False,
           listed: dict[str, Asset] | None = None, whole: dict[str, Asset | None] | None = None) -> Evidence:
    """`others`: another user's context, to read their assets of a shared file with their own key.
    `albums_held`: no album of the user is new or moved since before the unit read its sources
    (AlbumMarks): a source whose own record did not change since either is in the albums it was in then,
    so its albums are not read again. `listed`: the user's assets updated since the batch's targets were
    verified, as the gate listed them once (see `target_now`). `whole`: sources as the gate's listing
    showed them just now, whole and in no album (`Gate._sources_listed`): each stands for the source's
    own read and its albums' (none); one looked for there and not found (None) changed somehow since its
    unit's start, so its albums are read too, whatever the albums' marks say."""
    evidence = Evidence()
    for member in pending.members:
        for facts in member.sources:
            source_id = facts.asset.id
            now = (whole or {}).get(source_id)
            absent = whole is not None and source_id in whole and now is None
            earlier = Facts(now, albums=()) if now is not None else facts if albums_held and not absent else None
            try:
                evidence.sources[source_id] = read.source(ctx, source_id, listed=now, albums_if_unchanged=earlier)
            except errors.NotFound:
                evidence.sources[source_id] = None
        evidence.targets[member.target_id] = target_now(ctx, member, listed)
        evidence.files.append(_file_now(ctx, member, scope, others))
    for member in pending.members:
        if member.role == "video" and ctx.live_stills is not None:
            for source_id in member.ids:
                evidence.stills_of[source_id] = ctx.live_stills().get(source_id, [])
    return evidence


def target_now(ctx: RunContext, member: Member, listed: dict[str, Asset] | None) -> Asset | None:
    """The target now. The gate's listing holds every asset updated since the batch's targets were
    verified, so a verified target is in it (gone from it only when deleted, or moved out of the
    listing's reach: locked), with its row and EXIF as they are now: the bytes' proof (checksum, size,
    owner), trashed or not, its path, its video, and every value the gate compares except tags, which a
    listing does not carry. So the listing stands for one read of the target when the unit expects no
    tags on it; a target not in it, or one that must show tags, is read on its own."""
    if listed is not None and member.verified is not None and member.expected is not None and not member.expected.tags:
        found = listed.get(member.target_id)
        if found is not None and found.exifInfo is not None:
            return found
    return read.maybe_asset(ctx, member.target_id)


def _file_now(ctx: RunContext, member: Member, scope: Scope, others: Callable[[str], RunContext] | None) -> FileNow:
    source = member.source.asset
    etag = ctx.client.original_etag(source.id)
    stale = member.earlier or ctx.clock.monotonic() - member.proven_at > ctx.settings.rehash_after
    hashed = hash_original(ctx.client, source) if stale or etag is None or etag != member.etag else None
    view = file_holds(source.originalPath, source.libraryId, scope)
    names = scope.names(source.originalPath)
    if view.hold is not None:
        return FileNow(etag, hashed, view, None, names=names)
    sidecar_hold, readers = sidecar_readers(source.originalPath, scope)
    beside = _files_beside(names, scope)
    if beside == () and not view.look_up:
        # the job sees the folder and nothing there may share the sidecar, and no other library of the
        # user covers the file: no asset to look for (one search less per unit)
        near: list[Asset] = []
    else:  # one search per name finds both the file's other assets and the files that may share its sidecar
        near = _near(ctx.client, names)
    found = [a for a in near if a.originalPath in names]
    siblings = [a for a in near if _sibling(a, names)]
    partners = []
    libraries = {lib.id: lib.ownerId for lib in view.partners}
    owners = set(libraries.values()) | (set(readers) if sidecar_hold is None else set())
    if owners:
        assert others is not None, "a file shared with another user's library, in a run without their context"
    for owner in sorted(owners):
        theirs = _near(others(owner).client, names)
        partners += [a for a in theirs if libraries.get(a.libraryId) == owner and a.originalPath in names
                     and not a.isTrashed and not a.isOffline]
        siblings += [a for a in theirs if _sibling(a, names)]
    return FileNow(etag, hashed, view, found, partners, names, siblings, sidecar_hold, beside or ())


def _near(client, names: tuple[str, ...]) -> list[Asset]:
    """The user's live assets whose path starts like one of `names` without its extension, each once."""
    found: dict[str, Asset] = {}
    for stem in dict.fromkeys(stem_of(name) for name in names):
        for asset in client.assets_with_stem(stem):
            found.setdefault(asset.id, asset)
    return list(found.values())


def _sibling(asset: Asset, names: tuple[str, ...]) -> bool:
    return asset.originalPath not in names and any(share_sidecar(name, asset.originalPath) for name in names)


def _files_beside(names: tuple[str, ...], scope: Scope) -> tuple[str, ...] | None:
    """Where the job sees the file's folder itself (mounted beside Immich at the same path): the other
    files there that may read the same sidecar, in Immich or not (a RAW left out of every library).
    None where it does not see the folder under every name of the file."""
    if scope.aliases.identity is None:
        return None
    found = []
    for name in names:
        folder = posixpath.dirname(name)
        try:
            entries = os.listdir(folder)
        except OSError:
            return None
        # a file that may share the sidecar starts with this one's stem (paths.share_sidecar): only those
        # are compared, so a folder of thousands costs a string test per entry
        stem = posixpath.basename(stem_of(name)).casefold()
        found += [posixpath.join(folder, e) for e in entries if e.casefold().startswith(stem)
                  and not e.lower().endswith(".xmp") and share_sidecar(name, posixpath.join(folder, e))]
    return tuple(dict.fromkeys(found))

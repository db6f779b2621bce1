"""Reading: a source's whole curated record, a target's (with the kinds its sources have), what cannot
move, and who else holds a source's file. Only reads; safe to repeat at any time."""

from __future__ import annotations

import posixpath

from job import journal
from job.decide import Decision, file_holds, hold, twins
from job.facts import Facts
from job.immich import errors
from job.immich.models import Asset, MetadataItem
from job.move.context import RunContext
from job.outcome import Hold
from job.transfer import hash_original


def source(ctx: RunContext, asset_id: str, metadata: tuple[MetadataItem, ...] | None = None,
           albums_if_unchanged: Facts | None = None, listed: Asset | None = None) -> Facts:
    """Everything curated about a source, read side by side. Optional kinds are read only when the
    asset has them, so a plain photo costs three reads (two when its key/values, `metadata`, were just
    read). `albums_if_unchanged`: an earlier read of it, whose albums still hold if the asset's own
    record has not changed since (the gate, when no album moved: AlbumMarks; a unit's start, with the
    asset as listed in no album); its albums are then not read. The record matters: Immich's duplicate resolution adds the asset it keeps to the albums of
    the ones it trashes without moving those albums' marker, and it updates the kept asset's row.
    `listed`: the asset's whole record as a listing showed it seconds ago (a unit's start: see
    `Unit.listed_at`), read instead of the asset itself."""
    c = ctx.client
    known = metadata
    earlier = albums_if_unchanged
    for attempt in range(1, 4):
        record = listed if attempt == 1 else None
        asset, albums, metadata = ctx.fan((lambda: record) if record is not None else (lambda: c.asset(asset_id)),
                                          (lambda: None) if earlier is not None else (lambda: c.albums(asset_id)),
                                          (lambda: known) if known is not None else (lambda: c.metadata_of(asset_id)))
        if albums is None:
            same = asset.updatedAt is not None and asset.updatedAt == earlier.asset.updatedAt
            albums = earlier.albums if same and earlier.albums is not None else c.albums(asset_id)
        try:
            faces, edits, stack = ctx.fan(
                (lambda: tuple(c.faces_of(asset_id))) if asset.people else (lambda: ()),
                (lambda: tuple(c.edits_of(asset_id))) if asset.isEdited and ctx.caps.edits else (lambda: None),
                (lambda stack_id=asset.stack.id: c.stack(stack_id)) if asset.stack else (lambda: None),
            )
            break
        except (errors.NotFound, errors.BadRequest):
            # The stack can vanish between reading the asset and reading its stack: another member's
            # move (POST /stacks, or the copy endpoint merging stacks) replaces it with a new one. Read
            # the asset again to learn the new stack; a real error repeats.
            if asset.stack is None or attempt == 3:
                raise
    return Facts(asset=asset, albums=tuple(albums), metadata=tuple(metadata), faces=faces, edits=edits,
                 stack=stack, shared_links=ctx.shared_links.get(asset_id, frozenset()))


def listed_whole(asset: Asset) -> Asset:
    """An asset as a page of whole records listed it (untagged by its filter, `hasTags` false, which
    Immich's listing items do not show): its own record, with its tags, none."""
    return asset.model_copy(update={"tags": []})


def maybe_asset(ctx: RunContext, asset_id: str) -> Asset | None:
    try:
        return ctx.client.asset(asset_id)
    except errors.NotFound:
        return None


def target(ctx: RunContext, target_id: str, like: list[Facts], asset: Asset | None = None) -> Facts:
    """The target, read with the kinds its sources have (what the comparison needs), side by side;
    `asset`: the target's asset, when it was just read."""
    c = ctx.client
    albums = any(f.albums for f in like)
    metadata = any(not journal.ours(m.key) for f in like for m in f.metadata or ())
    faces = any(f.faces for f in like)
    edits = any(f.edits is not None for f in like)
    links = frozenset(link for f in like for link in f.shared_links or ())
    asset, album_list, items, face_list, edit_list, in_links = ctx.fan(
        (lambda: asset) if asset is not None else (lambda: c.asset(target_id)),
        (lambda: tuple(c.albums(target_id))) if albums else (lambda: ()),
        (lambda: tuple(c.metadata_of(target_id))) if metadata else (lambda: ()),
        (lambda: tuple(c.faces_of(target_id))) if faces else (lambda: ()),
        (lambda: tuple(c.edits_of(target_id))) if edits else (lambda: None),
        (lambda: frozenset(link for link in links if any(a.id == target_id for a in c.shared_link(link).assets)))
        if links else (lambda: frozenset()),
    )
    stack = c.stack(asset.stack.id) if asset.stack and any(f.stack for f in like) else None
    return Facts(asset=asset, albums=album_list, metadata=items, faces=face_list, edits=edit_list, stack=stack,
                 shared_links=in_links)


def cannot_move(ctx: RunContext, facts: Facts) -> list[str]:
    notes = []
    for album in facts.albums or ():
        if album.shared and album.isActivityEnabled:
            count = ctx.client.activity_count(album.id, facts.asset.id)
            if count:
                notes.append(f"{count} comments/likes in shared album '{album.albumName}' stay with the old asset")
    shown = ctx.memories.get(facts.asset.id, 0)
    if shown:
        notes.append(f"shown in {shown} memories; Immich makes new memories from the moved photo")
    return notes


def path_twins(ctx: RunContext, facts: Facts) -> tuple[Decision | None, list[Asset]]:
    """Who else holds this source's file: a hold, or the user's other assets of the same file that move
    with it (path twins in other selected libraries, at the same path or under another of its names)."""
    asset = facts.asset
    same_file_elsewhere(ctx, asset)
    view = file_holds(asset.originalPath, asset.libraryId, ctx.scope)
    if view.hold is not None:
        return view.hold, []
    if not view.look_up:
        return None, []
    held, found = twins(asset, assets_named(ctx.client, ctx.scope.names(asset.originalPath)), ctx.scope)
    if held is None:
        held = same_file(ctx, asset, found)
    return held, found if held is None else []


def same_file_elsewhere(ctx: RunContext, asset: Asset) -> None:
    """One folder under two names that nobody declared and the job cannot see (a second mount inside
    Immich's container): among the libraries of every user the run holds a key for, an asset at another
    path with the same file name, size and modification time, served with the same ETag and proven by
    hashing both, is the same file. Its folder is then another name of this one for the rest of the run
    (`Aliases.learn`), so every path rule applies to both. Only where those libraries have two import
    paths or more (else no alias among them can exist): one search by file name per user there."""
    scope = ctx.scope
    searchers = [(scope.user_id, ctx.client), *sorted(ctx.peers.items())]
    users = {user for user, _ in searchers}
    if len([r for lib in scope.libraries if lib.ownerId in users for r in lib.importPaths]) < 2:
        return
    names = scope.names(asset.originalPath)
    etag: str | None = None
    mine: tuple[str, int] | None = None
    for _, client in searchers:
        for other in client.iter_assets(size=1000, with_exif=True, originalFileName=asset.originalFileName):
            if (other.id == asset.id or other.originalPath in names or not other.is_external or other.isTrashed
                    or not _may_alias(scope, asset, other)
                    or other.isOffline or other.originalFileName != asset.originalFileName
                    or other.fileModifiedAt != asset.fileModifiedAt or asset.size is None or other.size != asset.size):
                continue
            etag = etag or ctx.client.original_etag(asset.id)
            if client.original_etag(other.id) != etag:
                continue
            mine = mine or hash_original(ctx.client, asset)
            if hash_original(client, other) == mine:
                scope.aliases.learn(posixpath.dirname(asset.originalPath), posixpath.dirname(other.originalPath))
                names = scope.names(asset.originalPath)


def _may_alias(scope, asset: Asset, other: Asset) -> bool:
    """Two assets can be one file under two names only through two import paths: in two libraries, or one
    library over two folders; and never a folder inside the other (a copy of a folder, not a name of it)."""
    a, b = posixpath.dirname(asset.originalPath), posixpath.dirname(other.originalPath)
    if a == b or a.startswith(b + "/") or b.startswith(a + "/"):
        return False
    if other.libraryId != asset.libraryId:
        return True
    return any(len(lib.importPaths) > 1 for lib in scope.libraries if lib.id == asset.libraryId)


def assets_named(client, names: tuple[str, ...]) -> list[Asset]:
    """The key's user's live assets of a file under any of its names."""
    return [a for name in names for a in client.assets_at(name)]


def same_file(ctx: RunContext, source: Asset, twins: list[Asset]) -> Decision | None:
    """A twin under another name is the same file only if Immich serves both with one ETag (size and
    modification time): a wrong alias (declared, or a folder the job sees that is not Immich's) must not
    make two different files one. Such a pair is held, never moved as one."""
    named = [t for t in twins if t.originalPath != source.originalPath]
    if not named:
        return None
    mine = ctx.client.original_etag(source.id)
    for twin in named:
        if mine is None or ctx.client.original_etag(twin.id) != mine:
            return hold(Hold.NAMES_DIFFER, f"{twin.originalPath} is another name of {source.originalPath} "
                                                 "(EXT2INT_PATH_ALIASES, or the folders the job sees), but Immich "
                                                 "serves it with another size or time: check the aliases")
    return None

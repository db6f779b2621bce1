"""The invariant every scenario ends with, checked by one function against the fake's final state.

It is written from the fake's own model, independently of the job's `record` module, so a field the
job forgets to compare is still caught here. Other assets are named by their CONTENT (SHA-1 of the
bytes), which stays the same when they move from the external to the internal library.

For every external asset of the migrated libraries at the start: either it still exists, unchanged,
or an internal asset of the same owner holds the same bytes and covers its curated record (and is not
in the trash). No internal asset exists twice. Every other asset, of every library and every user, is
still there with its curation, and every internal asset that existed keeps its values (nothing is
silently overwritten). Every file some other live asset still needs is still on disk (its original and
the XMP sidecar it reads, under whichever name it was crawled), every new internal copy holds what its
source's sidecar file held, and every file that left the disk is held by an internal asset of the user
whose deletion removed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from tests.fake_immich.state import Asset, World

MARKER = "immich-ext2int"


@dataclass(frozen=True)
class Curated:
    favorite: bool
    visibility: str
    description: str
    rating: int | None
    taken: str | None
    tz: str | None
    gps: tuple[float, float] | None
    tags: frozenset[str]
    albums: frozenset[str]
    covers: frozenset[str]
    links: frozenset[str]
    stack_others: frozenset[bytes] | None
    stack_primary: bool
    live: bytes | None
    edits: tuple
    kv: frozenset
    faces: frozenset


def _instant(value: str | None) -> str | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc).isoformat()


def curated(world: World, asset: Asset) -> Curated:
    sha = asset.blob.sha1
    exif = asset.exif
    gps = None
    if exif.get("latitude") is not None and exif.get("longitude") is not None:
        gps = (round(exif["latitude"], 6), round(exif["longitude"], 6))
    stack_others = None
    primary = False
    if asset.stack_id and asset.stack_id in world.stacks:
        members = world.stack_members(asset.stack_id)
        stack_others = frozenset(m.blob.sha1 for m in members) - {sha}
        primary_asset = world.assets.get(world.stacks[asset.stack_id].primary_asset_id)
        primary = primary_asset is not None and primary_asset.deleted_at is None and primary_asset.blob.sha1 == sha
    live = None
    if asset.live_photo_video_id and asset.live_photo_video_id in world.assets:
        live = world.assets[asset.live_photo_video_id].blob.sha1
    albums = [al for al in world.albums.values() if asset.id in al.asset_ids]
    faces = set()
    for face in world.faces.values():
        if face.asset_id == asset.id and face.person_id:
            w, h = face.image_width, face.image_height
            faces.add((face.person_id, tuple(round(v / d, 3) for v, d in zip(face.box, (w, h, w, h)))))
    return Curated(
        favorite=asset.is_favorite,
        visibility=asset.visibility,
        description=exif.get("description") or "",
        rating=exif.get("rating"),
        taken=_instant(exif.get("dateTimeOriginal")),
        tz=exif.get("timeZone"),
        gps=gps,
        tags=frozenset(world.tags[t].value for t in asset.tag_ids if t in world.tags),
        albums=frozenset(al.id for al in albums),
        covers=frozenset(al.id for al in albums if al.owner_id == asset.owner_id and al.thumbnail_asset_id in world.assets
                         and world.assets[al.thumbnail_asset_id].deleted_at is None
                         and world.assets[al.thumbnail_asset_id].blob.sha1 == sha),
        links=frozenset(link.id for link in world.links.values() if asset.id in link.asset_ids),
        stack_others=stack_others,
        stack_primary=primary,
        live=live,
        edits=tuple((e["action"], tuple(sorted(e["parameters"].items()))) for e in asset.edits),
        kv=frozenset((k, repr(sorted(v.items()))) for k, (v, _) in asset.metadata.items() if not k.startswith(MARKER)),
        faces=frozenset(faces),
    )


def _iou(a: tuple, b: tuple) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def uncovered(source: Curated, target: Curated) -> list[str]:
    """Fields of `source` that `target` does not hold."""
    problems = []

    def scalar(name: str) -> None:
        want, have = getattr(source, name), getattr(target, name)
        if want not in (None, "", ()) and want != have:
            problems.append(f"{name}: {want!r} != {have!r}")

    def subset(name: str) -> None:
        want, have = getattr(source, name), getattr(target, name)
        if not want <= have:
            problems.append(f"{name}: missing {sorted(map(str, want - have))}")

    if source.favorite and not target.favorite:
        problems.append("favorite lost")
    if source.visibility != "timeline" and source.visibility != target.visibility:
        problems.append(f"visibility: {source.visibility} != {target.visibility}")
    if source.visibility == "timeline" and target.visibility not in ("timeline", "archive"):
        problems.append(f"visibility: {target.visibility}")
    for name in ("description", "rating", "taken", "tz", "gps", "live", "edits"):
        scalar(name)
    for name in ("tags", "albums", "covers", "links", "kv"):
        subset(name)
    if source.stack_others is not None:
        if target.stack_others is None or not source.stack_others <= target.stack_others:
            problems.append(f"stack: {source.stack_others} not within {target.stack_others}")
        if source.stack_primary and not target.stack_primary:
            problems.append("stack primary lost")
    for person, box in source.faces:
        if not any(p == person and _iou(box, b) >= 0.5 for p, b in target.faces):
            problems.append(f"face of {person} at {box} missing")
    return problems


@dataclass
class Snapshot:
    sources: dict[str, tuple[bytes, int, str, Curated, str]]  # id -> (sha1, size, owner, curated, path)
    externals: dict[str, tuple[str, str, float | None, Curated, bool]]  # other external assets, any user:
    #                                                 id -> (owner, path, deleted_at, curated, its file is needed)
    internals: dict[str, tuple[str, bytes, float | None, Curated]]  # every internal asset: (owner, sha1, deleted_at, curated)
    removed_before: int  # files already removed from disk when the snapshot was taken
    disk: dict[str, bytes]  # path -> sha1 of every file on disk
    sidecars: dict[str, tuple[str, dict]]  # live external asset id -> (its sidecar file's real path, what it held)
    in_trash: frozenset[str] = frozenset()  # sources the job had trashed (see trashed_by_the_job)


def trashed_by_the_job(asset: Asset) -> bool:
    """A source an earlier run moved and trashed, still in Immich's trash: the trash watch proves it again
    (and moves it again when it changed), so it counts as a source: its curation as it is now must end on
    a live internal copy."""
    value = asset.metadata.get(MARKER, (None,))[0]
    return isinstance(value, dict) and value.get("state") == "trashed"


def _copy_of_a_trashed_source(world: World, asset: Asset) -> bool:
    """The job's own copy of sources it trashed: the trash watch may move one again into it, with the
    values the user gave it since (so its values may change; what it must hold is the sources')."""
    value = asset.metadata.get(MARKER, (None,))[0]
    if not isinstance(value, dict) or not value.get("created"):
        return False
    ids = [e.get("source") for e in value.get("sources", [])]
    return bool(ids) and all(i in world.assets and trashed_by_the_job(world.assets[i]) for i in ids)


def snapshot(world: World, library_ids: list[str], owner_id: str | None = None) -> Snapshot:
    """The world before a run that migrates `library_ids` (each with its owner's key; `owner_id`: only that
    user's assets in them count as sources, and those the job trashed earlier: see trashed_by_the_job)."""
    with world.lock:
        sources, externals, internals = {}, {}, {}
        owners = {lib_id: world.libraries[lib_id].owner_id for lib_id in library_ids}
        for a in world.assets.values():
            if a.internal and not _copy_of_a_trashed_source(world, a):
                internals[a.id] = (a.owner_id, a.blob.sha1, a.deleted_at, curated(world, a))
            elif a.internal:
                continue  # the job's own copy of a source still moving: it must cover that source (below)
            elif (a.library_id in owners and a.owner_id == (owner_id or owners[a.library_id])
                  and (a.deleted_at is None or trashed_by_the_job(a)) and not a.is_offline):
                sources[a.id] = (a.blob.sha1, a.blob.size, a.owner_id, curated(world, a), a.original_path)
            else:
                needed = a.deleted_at is None and not a.is_offline and world.on_disk(a.original_path) is not None
                externals[a.id] = (a.owner_id, a.original_path, a.deleted_at, curated(world, a), needed)
        disk = {path: blob.sha1 for path, blob in world.disk.items()}
        sidecars = {a.id: (world.real(a.sidecar_path), dict(world.disk_sidecars[world.real(a.sidecar_path)]))
                    for a in world.assets.values() if not a.internal and a.deleted_at is None and not a.is_offline
                    and a.sidecar_path is not None and world.real(a.sidecar_path) in world.disk_sidecars}
    in_trash = frozenset(i for i in sources if world.assets[i].deleted_at is not None)
    return Snapshot(sources, externals, internals, len(world.removed_files), disk, sidecars, in_trash)


def check(world: World, snap: Snapshot, *, delete_mode: str = "trash", require_done: bool = True,
          held: frozenset[str] | set[str] = frozenset(), policy: str = "hold") -> dict[str, str]:
    """Assert the invariant; return each source's state ('kept', 'moved'). With `require_done`, every
    source must have been moved (or kept in keep mode), except those in `held` (the job said why). With
    a conflict `policy` other than hold, the side it lets go of may lose its single values."""
    states = {}
    with world.lock:
        internal_by_content: dict[tuple[str, bytes], list[Asset]] = {}
        for asset in world.assets.values():
            if asset.internal:
                internal_by_content.setdefault((asset.owner_id, asset.blob.sha1), []).append(asset)
        for (owner, sha), twins in internal_by_content.items():
            assert len(twins) == 1, f"{len(twins)} internal assets hold the same bytes for one owner"

        for source_id, (sha, size, owner, before, path) in snap.sources.items():
            source = world.assets.get(source_id)
            alive = source is not None and source.deleted_at is None
            twins = internal_by_content.get((owner, sha), [])
            if alive:
                assert source.blob.sha1 == sha, f"{path}: the external asset's bytes changed"
                now = curated(world, source)
                # the twin may already have joined the source's stack and become its primary
                changed = [p for p in uncovered(before, now) if not (p.startswith("stack") and twins)]
                assert not changed, f"{path}: the external asset lost {changed}"
                states[source_id] = "kept"
                if require_done and source_id not in held:
                    assert delete_mode == "keep", f"{path}: not moved"
                if twins and source_id not in held:
                    assert twins[0].deleted_at is None or delete_mode != "keep", f"{path}: its copy is in the trash"
                if source_id in snap.sidecars:
                    assert snap.sidecars[source_id][0] in world.disk_sidecars, \
                        f"{path}: the XMP sidecar it reads was deleted from under it"
                continue
            if not require_done and source_id in snap.in_trash and source is not None:
                # still in the trash where the trash watch finds it (a run was cut off before it looked):
                # whole there, it is restored and moved again by a later run
                lost = uncovered(before, curated(world, source))
                assert source.blob.sha1 == sha and not lost, f"{path}: in the trash, it lost {lost}"
                states[source_id] = "in the trash"
                continue
            assert source_id not in held, f"{path}: reported held, but deleted"
            assert delete_mode != "keep", f"{path}: deleted although EXT2INT_DELETE=keep"
            assert twins, f"{path}: deleted, and no internal asset holds its bytes — a photo was lost"
            target = twins[0]
            assert target.deleted_at is None, f"{path}: only a TRASHED internal copy holds its bytes"
            assert target.blob.size == size
            problems = [p for p in uncovered(before, curated(world, target)) if policy != "internal" or not _scalar(p)]
            assert not problems, f"{path}: the internal copy lacks {problems}"
            if source_id in snap.sidecars and target.id not in snap.internals:  # a new copy gets the sidecar file
                lacking = set(snap.sidecars[source_id][1]) - set(target.sidecar or {})
                assert not lacking, f"{path}: the internal copy's sidecar lacks {sorted(lacking)} of the source's"
            if delete_mode == "trash" and source is not None:
                assert source.deleted_at is not None
            states[source_id] = "moved"

        movers = {o for _, _, o, _, _ in snap.sources.values()}
        for asset_id, (owner, path, deleted_at, before, needed) in snap.externals.items():
            asset = world.assets.get(asset_id)
            assert asset is not None, f"{path}: an asset the job did not move ({owner}'s) was deleted"
            assert asset.deleted_at == deleted_at, f"{path}: an asset the job did not move was trashed"
            now = curated(world, asset)
            # (a member of a stack with a moved asset sees its stack change; Immich may give an album a cover)
            lost = [p for p in uncovered(before, now) if owner not in movers or not p.startswith("stack")]
            assert not lost, f"{path}: {owner}'s asset lost {lost}"
            if needed:
                assert world.on_disk(asset.original_path) is not None, f"{path}: its file was deleted from under it"
            if asset_id in snap.sidecars and asset.deleted_at is None:
                assert snap.sidecars[asset_id][0] in world.disk_sidecars, \
                    f"{path}: the XMP sidecar it reads was deleted from under it"
        for asset_id, (owner, sha, deleted_at, before) in snap.internals.items():
            asset = world.assets.get(asset_id)
            assert asset is not None, f"internal asset {asset_id} of {owner} was deleted"
            assert deleted_at is not None or asset.deleted_at is None, f"internal asset {asset_id} was trashed"
            lost = [p for p in uncovered(before, curated(world, asset))
                    if not p.startswith("stack") and (policy != "external" or not _scalar(p))]
            assert not lost, f"internal asset {asset_id} lost {lost} (overwritten?)"
        users_of_file: dict[str, set[str]] = {}  # path -> every user with a live external asset of it before the run
        for _, _, owner, _, path in snap.sources.values():
            users_of_file.setdefault(world.real(path), set()).add(owner)
        for owner, path, deleted_at, _, _ in snap.externals.values():
            if deleted_at is None:
                users_of_file.setdefault(world.real(path), set()).add(owner)
        for path, blob, owner in world.removed_files[snap.removed_before:]:
            for user in users_of_file.get(path, set()) | {owner}:
                holders = internal_by_content.get((user, blob.sha1), [])
                assert any(h.deleted_at is None for h in holders), \
                    f"{path} left the disk and no internal asset of {user}, who had it, holds it"
        strangers = [a for a in world.assets.values() if a.internal and a.id not in snap.internals
                     and a.owner_id not in (movers or {a.owner_id})]
        assert not strangers, "an internal asset was created for the wrong user"
    return states


def _scalar(problem: str) -> bool:
    return problem.split(":")[0] in ("description", "rating", "taken", "tz", "gps", "edits")

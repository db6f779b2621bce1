"""Relations: what else depends on a file, an asset or the moment when the job deletes. Each case of
issue "one gate before every delete", built the way users build it, on the fake; `tests/e2e/` repeats
them on a real Immich. The invariant checks every user's assets and the files on disk."""

from __future__ import annotations

import json
import time

import pytest

from tests.clock import Later
from tests.conftest import spawn_job
from tests.fake_immich import content
from tests.invariant import check, curated, snapshot


def moved(scene, source):
    return next(a for a in scene.world.assets.values() if a.internal and a.blob.sha1 == source.blob.sha1)


def held_reasons(result) -> dict[str, str]:
    return {o["path"]: o["reason"] for o in result.outcomes("held")}


# --- 1. a shared folder ---------------------------------------------------------------------------------


def test_a_family_shared_folder_is_held_never_deleted_from_under_the_other_user(scene, run_job):
    mine = scene.library("mine", paths=["/mnt/shared"])
    theirs = scene.library("theirs", owner=scene.other, paths=["/mnt/shared"])
    photo = scene.photo(mine, "beach.jpg")
    scene.favorite(photo)
    their_copy = scene.scan(theirs)[0]
    scene.album("Her album", their_copy, owner=scene.other)
    private = scene.library("private", paths=["/mnt/private"])
    own = scene.photo(private, "mine-only.jpg")
    snap = snapshot(scene.world, [mine.id, private.id], scene.admin.id)

    result = run_job(scene.env(EXT2INT_DELETE="force"))

    assert result.code == 0, result.stderr
    held, = result.outcomes("held")
    assert held["path"] == "/mnt/shared/beach.jpg" and held["reason"] == "shared_with_user"
    assert "Other's library 'theirs'" in held["differences"][0]
    assert photo.deleted_at is None and their_copy.deleted_at is None
    assert "/mnt/shared/beach.jpg" in scene.world.disk, "her photo's file is still there"
    assert own.deleted_at is not None and result.counts()["uploaded"] == 1, "the unshared library moved"
    check(scene.world, snap, delete_mode="force", held={photo.id})
    assert not [r for r in scene.fake.log if photo.id in r.path], "held from the listing: no request about it"


def test_one_users_overlapping_libraries_move_together_into_one_target(scene, run_job):
    everything = scene.library("all", paths=["/mnt/photos"])
    year = scene.library("2020", paths=["/mnt/photos/2020"])
    photo = scene.photo(everything, "/mnt/photos/2020/a.jpg")
    twin = scene.scan(year)[0]
    scene.favorite(photo)
    scene.album("From the big library", photo)
    scene.tag(twin, "Year/2020")
    scene.album("From the 2020 library", twin)
    outside = scene.photo(everything, "b.jpg")
    snap = snapshot(scene.world, [everything.id, year.id], scene.admin.id)

    result = run_job(scene.env(EXT2INT_DELETE="force"))

    assert result.code == 0, result.stderr
    assert result.report["assetsMoved"] == 3 and result.counts()["uploaded"] == 2
    check(scene.world, snap, delete_mode="force")
    target = moved(scene, photo)
    record = curated(scene.world, target)
    assert record.favorite and {"Year/2020"} <= record.tags and len(record.albums) == 2, "both curations, one target"
    assert photo.id not in scene.world.assets and twin.id not in scene.world.assets
    assert outside.id not in scene.world.assets


def test_an_overlapping_library_that_is_not_selected_holds_the_shared_files(scene, run_job):
    everything = scene.library("all", paths=["/mnt/photos"])
    year = scene.library("2020", paths=["/mnt/photos/2020"])
    photo = scene.photo(everything, "/mnt/photos/2020/a.jpg")
    twin = scene.scan(year)[0]
    scene.edit(twin, description="curated in the 2020 library")
    outside = scene.photo(everything, "b.jpg")
    snap = snapshot(scene.world, [everything.id], scene.admin.id)

    result = run_job(scene.env(EXT2INT_LIBRARY_IDS=everything.id, EXT2INT_DELETE="force"))

    assert held_reasons(result) == {"/mnt/photos/2020/a.jpg": "shared_unselected"}
    assert photo.deleted_at is None and twin.deleted_at is None and "/mnt/photos/2020/a.jpg" in scene.world.disk
    assert outside.id not in scene.world.assets
    check(scene.world, snap, delete_mode="force", held={photo.id})


def test_an_exclusion_pattern_keeps_a_library_from_sharing_a_folder(scene, run_job):
    mine = scene.library("mine", paths=["/mnt/shared/mine"])
    scene.library("theirs", owner=scene.other, paths=["/mnt/shared"], exclude=["/mnt/shared/mine/**"])
    photo = scene.photo(mine, "a.jpg")
    snap = snapshot(scene.world, [mine.id], scene.admin.id)
    result = run_job(scene.env())
    assert result.counts()["uploaded"] == 1 and photo.deleted_at is not None
    check(scene.world, snap)


def test_a_key_that_cannot_list_libraries_holds_unless_the_user_asserts_nothing_is_shared(scene, run_job):
    lib = scene.library("theirs", owner=scene.other)
    photo = scene.photo(lib, "x.jpg")
    snap = snapshot(scene.world, [lib.id], scene.other.id)
    result = run_job(scene.env(scene.other_key))
    assert held_reasons(result) == {photo.original_path: "sharing_unknown"}
    assert "EXT2INT_ASSUME_UNSHARED" in result.outcomes("held")[0]["reasonText"]
    assert run_job(scene.env(scene.other_key, EXT2INT_ASSUME_UNSHARED="true")).counts()["uploaded"] == 1
    check(scene.world, snap)


# --- 2. a live photo's video that is not a source -------------------------------------------------------


def test_a_phone_backups_live_video_is_linked_to_never_deleted(scene, run_job):
    phone_video = scene.internal(content(7, 9000), "IMG_1.MOV", content_id="CID-1")
    lib = scene.library()
    still = scene.photo(lib, "IMG_1.jpg", content_id="CID-1")
    assert still.live_photo_video_id == phone_video.id, "Immich linked the external still to the internal video"
    snap = snapshot(scene.world, [lib.id], scene.admin.id)

    result = run_job(scene.env(EXT2INT_DELETE="force"))

    assert result.code == 0, result.stderr
    assert result.counts()["uploaded"] == 1 and result.report["assetsMoved"] == 1
    assert phone_video.id in scene.world.assets and phone_video.deleted_at is None, "the phone's video stays"
    assert moved(scene, still).live_photo_video_id == phone_video.id
    assert [a.type for a in map(scene.world.assets.get, scene.world.created_assets)] == ["IMAGE"], "never re-uploaded"
    check(scene.world, snap, delete_mode="force")


def test_a_live_video_in_a_library_not_selected_holds_the_still(scene, run_job):
    stills = scene.library("stills")
    videos = scene.library("videos")
    video = scene.video(videos, "IMG_2.mov", content_id="CID-2")
    still = scene.photo(stills, "IMG_2.jpg", content_id="CID-2")
    assert still.live_photo_video_id == video.id, "Immich linked them across libraries"
    snap = snapshot(scene.world, [stills.id], scene.admin.id)

    result = run_job(scene.env(EXT2INT_LIBRARY_IDS=stills.id, EXT2INT_DELETE="force"))

    assert held_reasons(result) == {still.original_path: "live_video_elsewhere"}
    assert video.deleted_at is None and still.deleted_at is None and not scene.world.created_assets
    check(scene.world, snap, delete_mode="force", held={still.id})
    both = run_job(scene.env(EXT2INT_DELETE="force"))  # both libraries: the pair moves together
    assert both.report["assetsMoved"] == 2
    assert moved(scene, still).live_photo_video_id == moved(scene, video).id


def test_a_video_whose_still_is_internal_is_held(scene, run_job):
    lib = scene.library()
    video = scene.video(lib, "IMG_3.mov", content_id="CID-3")
    phone_still = scene.internal(content(8), "IMG_3.HEIC", content_id="CID-3")
    assert phone_still.live_photo_video_id == video.id and video.visibility == "hidden"
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    result = run_job(scene.env(EXT2INT_DELETE="force"))
    assert held_reasons(result) == {video.original_path: "live_still_elsewhere"}
    assert video.deleted_at is None and phone_still.live_photo_video_id == video.id
    check(scene.world, snap, delete_mode="force", held={video.id})


# --- 3. the same bytes at two paths, 8. an internal twin with its own values ----------------------------


def test_the_same_bytes_at_two_paths_curated_differently_keep_both_values(scene, run_job):
    lib = scene.library()
    data = content(11)
    first = scene.edit(scene.photo(lib, "a.jpg", data=data), description="first caption", rating=5, latitude=1.0, longitude=2.0)
    second = scene.edit(scene.photo(lib, "copy/a.jpg", data=data), description="second caption", rating=3)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)

    result = run_job(scene.env(EXT2INT_CONCURRENCY="1"))

    assert result.counts()["uploaded"] == 1 and result.counts()["held"] == 1
    held, = result.outcomes("held")
    assert held["reason"] == "conflict" and {d.split(":")[0] for d in held["differences"]} == {"description", "rating"}
    check(scene.world, snap, held={held["asset_id"]})
    kept = first if held["asset_id"] == first.id else second
    assert kept.deleted_at is None and kept.exif["description"] in ("first caption", "second caption")


def test_an_internal_twin_keeps_its_own_values(scene, run_job):
    lib = scene.library()
    photo = scene.edit(scene.photo(lib, "a.jpg"), description="from the folder", rating=4)
    twin = scene.internal(photo.blob.read_all(), description="from the phone")
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    result = run_job(scene.env(EXT2INT_DELETE="force"))
    assert held_reasons(result) == {photo.original_path: "conflict"}
    assert twin.exif["description"] == "from the phone" and photo.id in scene.world.assets
    check(scene.world, snap, delete_mode="force", held={photo.id})


# --- 4. two runs at once ----------------------------------------------------------------------------------


def test_two_processes_on_one_library_never_act_on_one_asset(fake, scene, run_job, tmp_path):
    lib = scene.library()
    for group in range(3):
        stacked = [scene.photo(lib, f"s{group}-{i}.jpg") for i in range(3)]
        scene.stack(*stacked)
        scene.album(f"Album {group}", *stacked)
    for i in range(6):
        scene.favorite(scene.photo(lib, f"p{i}.jpg"))
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    reports = [tmp_path / "a.json", tmp_path / "b.json"]
    procs = [spawn_job(scene.env(EXT2INT_CONCURRENCY="2", EXT2INT_REPORT=str(r))) for r in reports]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode in (0, 1), err
    outcomes = [o for r in reports for o in json.loads(r.read_text())["outcomes"]]
    done = [o["asset_id"] for o in outcomes if o["kind"] in ("uploaded", "merged")]
    assert len(done) == len(set(done)), "no asset was moved by both"
    assert any(o["reason"] == "claimed" for o in outcomes), "the two runs did meet"
    check(scene.world, snap, require_done=False)
    while run_job(scene.env(), clock=Later(0)).report["assetsMoved"]:
        pass
    check(scene.world, snap)
    stacks = {a.stack_id for a in scene.world.assets.values() if a.internal and a.stack_id}
    assert len(stacks) == 3, "every stack survived"


# --- 5. the file rewritten after its bytes were proven ----------------------------------------------------


def test_a_file_rewritten_during_the_move_is_held_and_both_versions_survive(fake, scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    fake.faults.add("notify", method="PUT", route="/assets/copy")
    fake.on_notify = lambda: scene.rewrite(photo.original_path, content(99))

    result = run_job(scene.env(EXT2INT_DELETE="force"))

    assert held_reasons(result) == {photo.original_path: "file_changed"}
    assert scene.world.disk[photo.original_path].read_all() == content(99), "the new version is still on disk"
    assert moved(scene, photo).blob.sha1 == photo.blob.sha1, "the old version is the internal copy"
    check(scene.world, snap, delete_mode="force", held={photo.id})


def test_a_file_rewritten_after_an_earlier_run_proved_it_is_hashed_again(scene, run_job):
    scene.world.features["facialRecognition"] = True
    scene.world.detection_delay = 3600
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg", faces=[(100, 80, 220, 220)])
    scene.face(photo, scene.person("Alice"))
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    assert run_job(scene.env()).counts()["waiting"] == 1, "the journal now names the copy"
    scene.rewrite(photo.original_path, content(98))  # a new version; Immich has not rescanned
    scene.world.detection_delay = 0

    result = run_job(scene.env(EXT2INT_DELETE="force"))

    assert held_reasons(result) == {photo.original_path: "file_changed"}
    assert scene.world.disk[photo.original_path].read_all() == content(98)
    check(scene.world, snap, delete_mode="force", held={photo.id})


def test_an_old_proof_is_hashed_again_even_when_the_files_date_was_kept(fake, scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg", size=4096)
    path, mtime = photo.original_path, scene.world.disk_mtime[photo.original_path]
    fake.faults.add("notify", method="PUT", route="/assets/copy")
    fake.on_notify = lambda: scene.rewrite(path, content(97, 4096), mtime=mtime)  # same size, same date: same ETag
    result = run_job(scene.env(EXT2INT_DELETE="force", EXT2INT_REHASH_AFTER="0"))
    assert held_reasons(result) == {path: "file_changed"} and path in scene.world.disk


# --- 6. an upload answered with another asset's id ----------------------------------------------------------


def test_an_upload_answered_with_an_unrelated_assets_id_deletes_nothing(fake, scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    unrelated = scene.internal(content(55), "phone.jpg", description="a different photo")
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    body = json.dumps({"id": unrelated.id, "status": "created"}).encode()
    fake.faults.add("respond", method="POST", route="/assets", status=201, body=body, times=0)

    result = run_job(scene.env(EXT2INT_DELETE="force"))

    failed, = result.outcomes("failed")
    assert failed["stage"] == "prove" and unrelated.id in failed["reason"] and "left untouched" in failed["reason"]
    assert unrelated.id in scene.world.assets and unrelated.deleted_at is None
    assert photo.deleted_at is None
    check(scene.world, snap, delete_mode="force", require_done=False)
    assert not [r for r in fake.requests("DELETE", "/assets")], "no delete request at all"


# --- 7. curated while it moves --------------------------------------------------------------------------------


def test_curation_added_while_the_asset_moves_waits_and_is_carried_next_run(fake, scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    snaps = []

    def curate() -> None:
        scene.tag(photo, "Added/While/Moving")
        scene.edit(photo, description="written during the move")
        scene.album("New album", photo)
        snaps.append(snapshot(scene.world, [lib.id], scene.admin.id))

    fake.faults.add("notify", method="PUT", route="/assets/copy")
    fake.on_notify = curate

    first = run_job(scene.env())

    waiting, = first.outcomes("waiting")
    assert "curated while it moved" in waiting["reason"] and photo.deleted_at is None
    assert any("description" in d for d in waiting["differences"])
    fake.on_notify = None
    second = run_job(scene.env())
    assert second.counts()["uploaded"] == 1, second.report["outcomes"]
    check(scene.world, snaps[0])
    record = curated(scene.world, moved(scene, photo))
    assert "Added/While/Moving" in record.tags and record.description == "written during the move"


# --- the trash, disabled --------------------------------------------------------------------------------------


@pytest.mark.parametrize("trash", [True, False])
def test_a_trashed_source_keeps_its_file_until_immich_purges_it(trash, scene, run_job):
    scene.world.features["trash"] = trash
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    result = run_job(scene.env())
    assert result.counts()["uploaded"] == 1
    assert any("trash is turned off" in n for n in result.report["notes"]) is not trash, "the user is told"
    assert photo.deleted_at is not None and photo.original_path in scene.world.disk, "trashed: the file stays"
    with scene.world.lock:
        scene.world.nightly_deletion_check()
    assert (photo.id in scene.world.assets) is trash, "with the trash disabled the nightly check purges it"
    assert (photo.original_path in scene.world.disk) is trash
    check(scene.world, snap)



# --- 9. what the gate proves for many units at once -----------------------------------------------------


def album_lookups(fake, asset_id: str) -> int:
    return len([e for e in fake.requests("GET", "/albums") if e.query == f"assetId={asset_id}"])


def test_the_gate_reads_albums_once_per_batch_and_no_album_per_asset_when_none_moved(fake, scene, run_job):
    lib = scene.library()
    photos = [scene.photo(lib, f"p{i}.jpg") for i in range(4)]
    phone = scene.internal(content(7), "phone.jpg")
    scene.album("Trip", phone, *photos[:2], cover=phone)  # the cover stays: deleting a cover moves its album
    snap = snapshot(scene.world, [lib.id], scene.admin.id)

    result = run_job(scene.env(EXT2INT_DELETE="force"))

    assert result.counts()["uploaded"] == 4, result.report
    assert [album_lookups(fake, p.id) for p in photos] == [1, 1, 0, 0], \
        "a source in an album: its albums read once, when its unit starts; one listed in no album: never"
    searches = [e.body for e in fake.requests("POST", "/search/metadata") if (e.body or {}).get("libraryId") == lib.id and (e.body or {}).get("withExif")]
    assert searches[0].get("isNotInAlbum") is True and any("isNotInAlbum" not in b for b in searches), \
        "the library's assets in no album are listed first, then the rest"
    every = [e for e in fake.requests("GET", "/albums") if e.query == ""]
    assert 2 <= len(every) <= 5, f"one read of all albums per listing page in no album, one per gate batch: {len(every)}"
    check(scene.world, snap, delete_mode="force")


def join_at_the_start(fake, scene, album, photo, touch_album: bool) -> None:
    """After the listing showed `photo` in no album, as its unit starts (its first read: its key/values;
    its record is the listing's), it joins `album`: as the web UI adds it (the album's updatedAt moves),
    or as duplicate resolution keeps it (the asset's row is updated, no album moves)."""
    join_album_on(fake, scene, album, photo, touch_album, "/assets/{id}/metadata",
                  lambda entry: entry.path.rstrip("/").split("/")[-2] == photo.id)


def join_album_on(fake, scene, album, photo, touch_album: bool, route: str, due) -> None:
    """On the first `GET route` that is `due`, `photo` joins `album`, as the web UI adds it (the album's
    updatedAt moves) or as duplicate resolution keeps it (the asset's row is updated)."""
    def join():
        if not due(fake.current_request()) or photo.id in album.asset_ids:
            return
        with scene.world.lock:
            album.asset_ids.append(photo.id)
            if touch_album:
                album.updated_at = time.time()
            else:
                photo.updated_at = time.time()
    fake.faults.add("notify", method="GET", route=route, times=1000)
    fake.on_notify = join


@pytest.mark.parametrize("touch_album", [True, False], ids=["web-ui-add", "duplicate-resolution"])
def test_an_album_joined_after_the_listing_showed_none_is_never_lost(fake, scene, run_job, touch_album):
    lib = scene.library()
    photo, other = scene.photo(lib, "a.jpg"), scene.photo(lib, "b.jpg")
    late = scene.album("Late", other)
    join_at_the_start(fake, scene, late, photo, touch_album)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)

    first = run_job(scene.env(EXT2INT_DELETE="force"))
    fake.faults.clear()
    fake.on_notify = None
    # the start trusts the listing (its albums' marks, and the asset's record as listed); the gate sees the
    # album moved (web UI), or the asset's row moved (duplicate resolution), reads its albums, and the unit
    # waits for the next run, which carries the album
    assert photo.id in scene.world.assets and not scene.world.assets[photo.id].deleted_at, first.report["outcomes"]
    assert [o["kind"] for o in first.report["outcomes"] if o["path"].endswith("/a.jpg")] == ["waiting"], first.report["outcomes"]
    second = run_job(scene.env(EXT2INT_DELETE="force"))
    assert photo.id not in scene.world.assets, second.report["outcomes"]
    assert moved(scene, photo).id in late.asset_ids, "the album joined after the listing reached the copy"
    check(scene.world, snap, delete_mode="force")


def test_a_deleted_album_cover_makes_the_next_batch_read_albums_per_asset(fake, scene, run_job):
    """Immich picks a new cover when the old one goes (updateThumbnails, on the next album read), which
    moves the album's updatedAt: the gate cannot tell that from an asset added, so it reads again."""
    lib = scene.library()
    photos = [scene.photo(lib, f"p{i}.jpg") for i in range(4)]
    scene.album("Trip", *photos)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)

    result = run_job(scene.env(EXT2INT_DELETE="force"))

    assert result.counts()["uploaded"] == 4, result.report
    assert any(album_lookups(fake, p.id) == 2 for p in photos), "a batch after the cover's delete read per asset"
    check(scene.world, snap, delete_mode="force")


def add_before_the_gate(fake, scene, album, photo, touch_album: bool) -> None:
    """After the unit read the photo's albums, just before a gate reads all albums, the photo joins `album`: as the web UI adds it (album.service addAssets: the album's updatedAt moves), or
    as Immich's duplicate resolution keeps it (addAssetIdsToAlbums: no album moves, the kept asset's row
    is updated)."""
    # due: a read of all albums after the unit read the photo
    join_album_on(fake, scene, album, photo, touch_album, "/albums",
                  lambda entry: not entry.query and bool(fake.requests("GET", "/assets/{id}")))


@pytest.mark.parametrize("touch_album", [True, False], ids=["web-ui-add", "duplicate-resolution"])
def test_an_album_joined_during_the_move_is_seen_by_the_gate_and_carried_next_run(fake, scene, run_job, touch_album):
    lib = scene.library()
    photo, other = scene.photo(lib, "a.jpg"), scene.photo(lib, "b.jpg")
    late = scene.album("Late", other)
    add_before_the_gate(fake, scene, late, photo, touch_album)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)

    first = run_job(scene.env(EXT2INT_DELETE="force"))

    assert photo.id in scene.world.assets and not scene.world.assets[photo.id].deleted_at, first.report["outcomes"]
    assert album_lookups(fake, photo.id) == 1, "the gate read the source's albums: a marker said they may have changed"
    fake.faults.clear()
    fake.on_notify = None
    second = run_job(scene.env(EXT2INT_DELETE="force"))
    assert photo.id not in scene.world.assets, second.report["outcomes"]
    assert moved(scene, photo).id in late.asset_ids, "the album joined during the move reached the copy"
    check(scene.world, snap, delete_mode="force")


def gate_listings(fake) -> list[int]:
    """Where in the log the gate listed what changed since its batch's targets were verified."""
    return [i for i, e in enumerate(fake.log) if e.route == "/search/metadata" and (e.body or {}).get("updatedAfter")]


def target_reads_after(fake, start: int, target_ids: set[str]) -> int:
    return len([e for e in fake.log[start:] if e.method == "GET" and e.route == "/assets/{id}"
                and e.path.rsplit("/", 1)[-1] in target_ids])


def test_the_gate_lists_the_batchs_targets_once_instead_of_reading_each(fake, scene, run_job):
    lib = scene.library()
    photos = [scene.photo(lib, f"p{i}.jpg") for i in range(3)]
    snap = snapshot(scene.world, [lib.id], scene.admin.id)

    result = run_job(scene.env(EXT2INT_DELETE="force", EXT2INT_CONCURRENCY="1"))

    assert result.counts()["uploaded"] == 3, result.report
    listings = gate_listings(fake)
    assert listings, "the gate listed what changed since its targets were verified"
    targets = {moved(scene, p).id for p in photos}
    assert target_reads_after(fake, listings[0], targets) == 0 or len(listings) > 1
    assert target_reads_after(fake, listings[-1], targets) == 0, "no target read on its own after the last listing"
    check(scene.world, snap, delete_mode="force")


def test_a_target_changed_after_its_verification_is_seen_in_the_listing(fake, scene, run_job):
    """The copy's description changes between its verification and the gate (an edit, or another process
    carrying into it): the listing shows the copy as it is now, and the unit waits."""
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg", description="Cliffs")
    snap = snapshot(scene.world, [lib.id], scene.admin.id)

    def edit():  # at the first search after the copy: the gate's listing, before Immich answers it
        if not fake.requests("PUT", "/assets/copy"):
            return
        with scene.world.lock:
            target = moved(scene, photo)
            if target.exif.get("description") == "Cliffs":
                target.exif["description"] = "Cliffs, edited"
    fake.faults.add("notify", method="POST", route="/search/metadata", times=1000)
    fake.on_notify = edit

    first = run_job(scene.env(EXT2INT_DELETE="force"))

    assert first.counts().get("waiting") == 1, first.report["outcomes"]
    assert photo.id in scene.world.assets, "the source stays while the copy does not show what was verified"
    check(scene.world, snap, delete_mode="force", require_done=False)


def own_reads(fake, asset_id: str) -> int:
    """`GET /assets/{id}` of that asset (its own record read), in the run so far."""
    return len([e for e in fake.requests("GET", "/assets/{id}") if e.path.rstrip("/").rsplit("/", 1)[-1] == asset_id])


def test_a_photo_listed_whole_is_read_by_listings_at_its_start_and_at_the_gate(fake, scene, run_job):
    """Untagged, unstacked, in no album: the listing page (with people) is the photo's record at its start,
    and the gate's one listing of its batch's sources (the same filters over their dates) is its record at
    the gate. A tagged, a stacked and an album's photo are read at their start and at the gate."""
    lib = scene.library()
    plain, faced = scene.photo(lib, "plain.jpg"), scene.photo(lib, "faced.jpg", description="Ann at the sea")
    scene.face(faced, scene.person("Ann"))
    tagged, in_album = scene.tag(scene.photo(lib, "tagged.jpg"), "Sea"), scene.photo(lib, "album.jpg")
    scene.album("Sea", in_album)
    stacked = [scene.photo(lib, f"s{i}.jpg") for i in range(2)]
    scene.stack(*stacked)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)

    result = run_job(scene.env(EXT2INT_DELETE="force"))

    assert result.counts()["uploaded"] == 6, result.report["outcomes"]
    assert [own_reads(fake, p.id) for p in (plain, faced)] == [0, 0], "listed at the start and at the gate"
    assert all(own_reads(fake, p.id) >= 2 for p in (tagged, in_album, *stacked)), "read at their start and at the gate"
    whole = [e.body for e in fake.requests("POST", "/search/metadata") if (e.body or {}).get("withPeople")]
    assert whole and all(b.get("tagIds", "absent") is None and b.get("withStacked") is False and b.get("isNotInAlbum")
                         and b["size"] <= (100 if "takenAfter" in b else 50) for b in whole), whole
    gates = [b for b in whole if "takenAfter" in b]
    assert gates and all(b["libraryId"] == lib.id and b["takenAfter"] < b["takenBefore"] for b in gates), gates
    assert [p.name for p in curated_people(scene, faced)] == ["Ann"], "the face listed with its person was carried"
    check(scene.world, snap, delete_mode="force")


@pytest.mark.parametrize("change", ["locked", "tagged", "album", "stacked", "trashed", "dated"])
def test_a_source_changed_before_the_gates_listing_is_read_on_its_own(fake, scene, run_job, change):
    """Between a plain photo's verification and the gate, the user locks it, tags it, adds it to an album,
    stacks it, trashes it or changes its date: the gate's listing of its sources leaves it out, so the gate
    reads it on its own (its albums too) and nothing curated is lost: the unit waits (or, locked, is out
    of the key's reach and stays), and every other photo of the batch moves. A locked source's own read
    is refused to an API key (the contract step), and nothing is deleted on the strength of an absence."""
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    others = [scene.photo(lib, f"b{i}.jpg") for i in range(3)]
    partner = scene.photo(scene.library("phone-export"), "x.jpg")  # a stack partner outside the moved library
    snaps = []

    def edit():  # as the photo's copy is verified (its read), after the copy: before the gate
        targets = [a.id for a in list(scene.world.assets.values()) if a.internal and a.blob.sha1 == photo.blob.sha1]
        if snaps or not targets or not fake.current_request().path.rstrip("/").endswith(targets[0]):
            return
        if change == "locked":
            scene.edit(photo, visibility="locked")
        elif change == "tagged":
            scene.tag(photo, "Late")
        elif change == "album":
            scene.album("Late", photo)
        elif change == "stacked":
            scene.stack(photo, partner)
        elif change == "trashed":
            scene.trash(photo)
        else:
            scene.edit(photo, dateTimeOriginal="2001-02-03T04:05:06.000Z")
        snaps.append(snapshot(scene.world, [lib.id], scene.admin.id))
    fake.faults.add("notify", method="GET", route="/assets/{id}", times=1000)
    fake.on_notify = edit

    result = run_job(scene.env(EXT2INT_DELETE="force", EXT2INT_LIBRARY_IDS=lib.id))

    assert snaps, "the change was made before the gate"
    assert photo.id in scene.world.assets, result.report["outcomes"]
    assert result.counts()["uploaded"] == len(others), result.report["outcomes"]
    assert all(o.id not in scene.world.assets for o in others)
    # a new date may leave the listing's window (once Immich re-reads the file) or show in the record listed
    assert own_reads(fake, photo.id) >= (0 if change == "dated" else 1), "read on its own once out of the listing"
    assert sum(own_reads(fake, o.id) for o in others) == 0, "the others of the batch were listed"
    check(scene.world, snaps[0], delete_mode="force", require_done=False)


def test_sources_beyond_a_full_page_of_the_gates_listing_are_not_taken_for_changed(fake, scene, run_job, monkeypatch):
    """Many photos of one date (a scanner's, a copy's): Immich orders them by id, and a batch's sources
    need not be on the gate's one page. A source not on a full page proves nothing: it is read on its own
    as before, its albums are not (no album moved), and once a full page showed fewer than half of the
    sources looked for, that library's sources are not listed again in the run."""
    from job.move.gate import Gate
    monkeypatch.setattr(Gate, "SOURCES_PAGE", 1)
    monkeypatch.setattr(Gate, "MAX_ITEMS", 3)  # batches of at most three: a page of one shows at most one
    lib = scene.library()
    photos = [scene.photo(lib, f"scan{i:02}.jpg") for i in range(12)]  # one `taken` for all: one instant
    snap = snapshot(scene.world, [lib.id], scene.admin.id)

    result = run_job(scene.env(EXT2INT_DELETE="force"))

    assert result.counts()["uploaded"] == len(photos), result.report["outcomes"]
    by_asset = [e for e in fake.requests("GET", "/albums") if "assetId" in e.query]
    assert by_asset == [], "no album moved: no source's albums are read again"
    gate_pages = [e.body for e in fake.requests("POST", "/search/metadata") if "takenAfter" in (e.body or {})]
    assert gate_pages and all(b["size"] == 1 and b["takenAfter"] < b["takenBefore"] for b in gate_pages)
    assert len(gate_pages) < len(fake.requests("DELETE", "/assets")), "a crowded library is listed no more"
    assert sum(own_reads(fake, p.id) for p in photos) >= len(photos) - len(gate_pages)
    check(scene.world, snap, delete_mode="force")


def curated_people(scene, photo):
    target = moved(scene, photo)
    return [scene.world.people[f.person_id] for f in scene.world.faces.values() if f.asset_id == target.id and f.person_id]


def test_a_listing_page_older_than_a_few_seconds_is_not_a_record(fake, scene, run_job):
    """Listed, then more than WHOLE_FRESH seconds pass before the unit starts (a long page, a slow run):
    the unit reads its asset itself."""
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    clock = Later()

    advanced = []

    def late():  # the first page after the first read of the albums' marks (the page of whole records) was
        # asked for: it answers ten seconds later
        if not advanced and [e for e in fake.requests("GET", "/albums") if e.query == ""]:
            advanced.append(True)
            clock.advance(10)
    fake.faults.add("notify", method="POST", route="/search/metadata", times=1000)
    fake.on_notify = late

    result = run_job(scene.env(EXT2INT_DELETE="force"), clock=clock)

    assert result.counts()["uploaded"] == 1, result.report["outcomes"]
    assert own_reads(fake, photo.id) == 1, "read at its start (the page was stale); the gate's listing is fresh"
    check(scene.world, snap, delete_mode="force")


def test_curation_added_between_the_listing_and_the_start_is_carried_next_run(fake, scene, run_job):
    """The listed record is a few seconds old when the unit starts: a description written meanwhile is not
    in it. The gate reads the source itself, sees it, and the unit waits; the next run carries it."""
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    snaps = []

    def curate():  # as the unit starts: its first read of its own (its key/values)
        if fake.current_request().path.rstrip("/").split("/")[-2] == photo.id and not snaps:
            scene.edit(photo, description="written after the listing")
            snaps.append(snapshot(scene.world, [lib.id], scene.admin.id))
    fake.faults.add("notify", method="GET", route="/assets/{id}/metadata", times=1000)
    fake.on_notify = curate

    first = run_job(scene.env(EXT2INT_DELETE="force"))

    waiting, = first.outcomes("waiting")
    assert "curated while it moved" in waiting["reason"] and photo.id in scene.world.assets, first.report["outcomes"]
    fake.faults.clear()
    fake.on_notify = None
    second = run_job(scene.env(EXT2INT_DELETE="force"))
    assert second.counts()["uploaded"] == 1, second.report["outcomes"]
    assert curated(scene.world, moved(scene, photo)).description == "written after the listing"
    check(scene.world, snaps[0], delete_mode="force")

"""The core move against the fake server: each kind of asset, the duplicate traps, ownership."""

from __future__ import annotations

import hashlib

from tests.invariant import check, snapshot


def test_photo_is_uploaded_proven_curated_and_then_trashed(scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg", gps=(53.3, -6.2))
    scene.favorite(photo)
    scene.edit(photo, description="Cliffs at dawn", rating=4)
    scene.tag(photo, "Trips/Ireland", "Family")
    album = scene.album("Trips", photo, cover=photo)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)

    result = run_job(scene.env())

    assert result.code == 0, result.stderr
    assert result.counts()["uploaded"] == 1
    check(scene.world, snap)
    twin = next(a for a in scene.world.assets.values() if a.internal)
    assert twin.checksum == hashlib.sha1(photo.blob.read_all()).digest()
    assert photo.deleted_at is not None and photo.id in scene.world.assets, "trash mode keeps it restorable"
    assert album.thumbnail_asset_id == twin.id
    marker = twin.metadata["immich-ext2int"][0]
    assert marker["sources"][0]["source"] == photo.id and marker["sources"][0]["path"] == photo.original_path
    # the report counts every request by kind of call, as the server saw them
    sent = {}
    for e in scene.fake.log:
        sent[f"{e.method} /api{e.route}"] = sent.get(f"{e.method} /api{e.route}", 0) + 1
    routes = result.report["requests"]["byRoute"]
    assert {route: seen["count"] for route, seen in routes.items()} == sent
    assert sum(seen["count"] for seen in routes.values()) == result.report["requests"]["total"]
    assert all(seen["seconds"] >= 0 for seen in routes.values())


def test_video_moves(scene, run_job):
    lib = scene.library()
    video = scene.video(lib, "v.mp4")
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    result = run_job(scene.env())
    assert result.code == 0 and result.counts()["uploaded"] == 1
    check(scene.world, snap)
    twin = next(a for a in scene.world.assets.values() if a.internal)
    assert twin.type == "VIDEO" and twin.duration == video.duration


def test_live_photo_moves_video_first_and_keeps_the_link(scene, run_job):
    lib = scene.library()
    still, motion = scene.live(lib, "l01")
    snap = snapshot(scene.world, [lib.id], scene.admin.id)

    result = run_job(scene.env(EXT2INT_BATCH_SIZE="1"))

    assert result.code == 0, result.stderr
    assert result.counts()["uploaded"] == 1 and result.report["assetsMoved"] == 2, "a pair counts once in the batch"
    check(scene.world, snap)
    created = [scene.world.assets[i] for i in scene.world.created_assets]
    assert [a.type for a in created] == ["VIDEO", "IMAGE"], "the video half is uploaded first"
    new_still = created[1]
    assert new_still.live_photo_video_id == created[0].id and created[0].visibility == "hidden"
    assert still.deleted_at is not None and motion.deleted_at is not None


def test_duplicate_already_internal_is_merged_not_uploaded(scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "p07.jpg", description="")
    scene.album("Holiday", photo)
    scene.favorite(photo)
    twin = scene.internal(photo.blob.read_all(), "phone.jpg", description="From my phone")
    snap = snapshot(scene.world, [lib.id], scene.admin.id)

    result = run_job(scene.env())

    assert result.code == 0, result.stderr
    assert result.counts()["merged"] == 1 and not scene.world.created_assets
    check(scene.world, snap)
    assert twin.exif["description"] == "From my phone", "the twin keeps what the source left empty"
    assert twin.is_favorite


def test_duplicate_in_the_trash_is_restored_before_the_external_is_deleted(scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "p08.jpg")
    twin = scene.internal(photo.blob.read_all(), trashed=True)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)

    result = run_job(scene.env())

    assert result.code == 0 and result.counts()["merged"] == 1
    assert twin.deleted_at is None, "the only copy must not stay in the trash"
    check(scene.world, snap)


def test_byte_checksum_external_asset_from_an_old_server(scene, run_job):
    """Older servers imported some external assets with the bytes' checksum, not the path's."""
    lib = scene.library()
    photo = scene.photo(lib, "old.jpg")
    with scene.world.lock:
        photo.checksum = photo.blob.sha1
    twin = scene.internal(photo.blob.read_all())
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    result = run_job(scene.env())
    assert result.code == 0 and result.counts()["merged"] == 1
    assert not scene.world.created_assets
    check(scene.world, snap)
    assert twin.deleted_at is None


def test_another_users_library_is_refused_and_untouched(scene, run_job):
    theirs = scene.library("theirs", owner=scene.other)
    scene.photo(theirs, "x.jpg")
    mine = scene.library("mine")
    scene.photo(mine, "y.jpg")
    snap = snapshot(scene.world, [mine.id], scene.admin.id)

    refused = run_job(scene.env(EXT2INT_LIBRARY_IDS=theirs.id))
    assert refused.code == 2
    assert "belongs to Other, whose API key this run does not have" in refused.stderr and "Add Other's key" in refused.stderr
    assert not scene.fake.mutating_requests()

    result = run_job(scene.env())  # without ids: only the key's own libraries
    assert result.code == 0 and result.counts()["uploaded"] == 1
    check(scene.world, snap)


def test_offline_asset_is_skipped_with_its_reason(scene, run_job):
    lib = scene.library()
    gone = scene.photo(lib, "gone.jpg")
    scene.photo(lib, "here.jpg")
    with scene.world.lock:
        gone.is_offline = True  # the file vanished but the scan has not trashed it yet
    result = run_job(scene.env())
    assert result.code == 0
    skipped = result.outcomes("skipped")
    assert [(o["path"], o["reason"]) for o in skipped] == [(gone.original_path, "offline")]
    assert gone.deleted_at is None and result.counts()["uploaded"] == 1


def test_locked_and_trashed_external_assets_are_left_alone(scene, run_job):
    lib = scene.library()
    locked = scene.edit(scene.photo(lib, "secret.jpg"), visibility="locked")
    trashed = scene.trash(scene.photo(lib, "binned.jpg"))
    result = run_job(scene.env())
    assert result.code == 0 and result.counts()["uploaded"] == 0
    assert locked.deleted_at is None and trashed.id in scene.world.assets
    assert not scene.world.created_assets


def test_a_second_run_changes_nothing(scene, run_job):
    lib = scene.library()
    for i in range(3):
        scene.album(f"A{i}", scene.photo(lib, f"{i}.jpg"))
    assert run_job(scene.env()).code == 0
    scene.fake.clear_log()
    again = run_job(scene.env())
    assert again.code == 0 and sum(again.counts().values()) == 0
    # the one write: the trash watch marks the trashed sources it proved (their journal, the job's own key)
    writes = scene.fake.mutating_requests()
    assert [w.route for w in writes] == ["/assets/metadata"] and again.report["trashWatch"]["proven"] == 3
    scene.fake.clear_log()
    third = run_job(scene.env())
    assert third.code == 0 and sum(third.counts().values()) == 0
    assert not scene.fake.mutating_requests()


def test_force_deletes_and_the_file_leaves_the_disk(scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    result = run_job(scene.env(EXT2INT_DELETE="force"))
    assert result.code == 0
    check(scene.world, snap, delete_mode="force")
    assert photo.id not in scene.world.assets and photo.original_path not in scene.world.disk


def test_keep_copies_only_and_a_rerun_does_not_copy_again(scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    first = run_job(scene.env(EXT2INT_DELETE="keep"))
    assert first.code == 0 and first.counts()["uploaded"] == 1
    check(scene.world, snap, delete_mode="keep")
    assert photo.deleted_at is None
    scene.fake.clear_log()
    second = run_job(scene.env(EXT2INT_DELETE="keep"))
    assert [o["reason"] for o in second.outcomes("skipped")] == ["kept"]
    assert not scene.fake.requests("GET", "/assets/{id}/original")
    third = run_job(scene.env())  # switching to trash finishes the move without a new transfer...
    assert third.counts()["uploaded"] == 1 and not scene.fake.requests("POST", "/assets")
    # ...but the gate hashes the file again before deleting: its bytes were proven by an earlier run
    assert len(scene.fake.requests("GET", "/assets/{id}/original")) == 1
    check(scene.world, snap)


def test_plan_sends_no_mutating_request_and_lists_every_asset(scene, run_job):
    lib = scene.library()
    scene.photo(lib, "a.jpg")
    scene.live(lib, "l")
    gone = scene.photo(lib, "gone.jpg")
    with scene.world.lock:
        gone.is_offline = True
    scene.album("A", scene.photo(lib, "b.jpg"))
    scene.memory(next(iter(a for a in scene.world.assets.values() if a.original_file_name == "b.jpg")))

    result = run_job(scene.env(), "plan")

    assert result.code == 0, result.stderr
    assert not scene.fake.mutating_requests()
    kinds = sorted((o["path"].rsplit("/", 1)[-1], o["kind"]) for o in result.outcomes())
    assert kinds == [("a.jpg", "planned"), ("b.jpg", "planned"), ("gone.jpg", "skipped"), ("l.jpg", "planned")]
    assert "1 live photos" in result.stdout and "touching 1 albums" in result.stdout
    b = next(o for o in result.outcomes() if o["path"].endswith("b.jpg"))
    assert b["cannot_move"] == ["shown in 1 memories"]


def test_plan_lists_in_whole_pages_where_run_lists_short_ones(fake, scene, run_job):
    """A run's page of whole records (job/run/listing.py) is short, to be used up within seconds; `plan`
    moves nothing, so it lists the same phases in its own, large pages (a 100,000-asset plan would
    otherwise ask for 2,000 pages)."""
    lib = scene.library()
    for i in range(120):
        scene.photo(lib, f"p{i}.jpg", synthetic=True)

    assert run_job(scene.env(), "plan").counts()["planned"] == 120
    whole = [e.body for e in fake.requests("POST", "/search/metadata") if (e.body or {}).get("withPeople")]
    assert whole and all(b["size"] == 1000 for b in whole), whole
    fake.log.clear()
    assert run_job(scene.env(EXT2INT_BATCH_SIZE="100")).counts()["uploaded"] == 100
    whole = [e.body for e in fake.requests("POST", "/search/metadata") if (e.body or {}).get("withPeople")
             and "takenAfter" not in e.body]  # not the gate's listing of its sources
    assert len(whole) >= 2 and all(b["size"] == 50 for b in whole), whole


def test_plan_shows_what_run_would_decide_holds_and_conflicts_included(scene, run_job):
    lib = scene.library()
    scene.library("theirs", owner=scene.other, paths=["/mnt/photos/shared"])
    shared = scene.photo(lib, "shared/family.jpg")
    conflicting = scene.edit(scene.photo(lib, "c.jpg"), description="from the folder")
    scene.internal(conflicting.blob.read_all(), description="from the phone")
    still, video = scene.live(lib, "l")
    scene.trash(video)
    stills, videos = scene.library("stills"), scene.library("videos")
    scene.video(videos, "IMG_2.mov", content_id="CID-PLAN")
    elsewhere = scene.photo(stills, "IMG_2.jpg", content_id="CID-PLAN")
    assert run_job(scene.env(EXT2INT_LIBRARY_IDS=lib.id)).counts()["held"] == 2, "run held the shared file and the conflict"
    plain = scene.photo(lib, "plain.jpg")
    scene.fake.clear_log()

    result = run_job(scene.env(EXT2INT_LIBRARY_IDS=f"{lib.id},{stills.id}"), "plan")

    assert result.code == 0, result.stderr
    assert not scene.fake.mutating_requests()
    plans = {o["path"].rsplit("/", 1)[-1]: o["plan"] for o in result.outcomes()}
    assert plans["family.jpg"] == "hold (shared_with_user)"
    assert plans["c.jpg"] == "hold (conflict)", "an earlier run's journal names the twin: plan compares"
    assert plans["l.jpg"] == "skip (live_video_unavailable)"
    assert plans["IMG_2.jpg"] == "hold (live_video_elsewhere)"
    assert plans["plain.jpg"].startswith("move")
    assert "description: external 'from the folder', internal 'from the phone'" in result.stdout
    assert shared.deleted_at is None and elsewhere.deleted_at is None and plain.deleted_at is None and still.deleted_at is None


def test_plan_knows_an_earlier_runs_journal(scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    assert run_job(scene.env(EXT2INT_DELETE="keep")).counts()["uploaded"] == 1
    kept = run_job(scene.env(EXT2INT_DELETE="keep"), "plan")
    assert [o["plan"] for o in kept.outcomes()] == ["skip (kept)"]
    finishing = run_job(scene.env(), "plan")
    assert [o["plan"] for o in finishing.outcomes()] == ["finish (copied earlier: verify, delete)"]
    assert photo.deleted_at is None

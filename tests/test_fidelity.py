"""Every kind of curated metadata moves with the photo and is verified; servers of different ages;
what cannot move; the re-import loop."""

from __future__ import annotations

import pytest

from tests.clock import Jumping
from tests.fake_immich import FakeImmich, Scene
from tests.invariant import check, snapshot


def moved(scene: Scene, source):
    """The internal twin of `source` (same bytes, same owner)."""
    return next(a for a in scene.world.assets.values() if a.internal and a.blob.sha1 == source.blob.sha1)


def run_and_check(scene, run_job, lib, runs: int = 1, **env):
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    for _ in range(runs):
        result = run_job(scene.env(**env))
        assert result.code == 0, result.stderr
        check(scene.world, snap, delete_mode=env.get("EXT2INT_DELETE", "trash"), require_done=False)
    check(scene.world, snap, delete_mode=env.get("EXT2INT_DELETE", "trash"))
    return result


@pytest.mark.parametrize("fields,expected", [
    (dict(isFavorite=True), lambda t: t.is_favorite),
    (dict(visibility="archive"), lambda t: t.visibility == "archive"),
    (dict(description="Cliffs at dawn"), lambda t: t.exif["description"] == "Cliffs at dawn"),
    (dict(rating=5), lambda t: t.exif["rating"] == 5),
    (dict(rating=1), lambda t: t.exif["rating"] == 1),
    (dict(dateTimeOriginal="2015-08-09T18:30:00+02:00", timeZone="Europe/Paris"),
     lambda t: (t.exif["dateTimeOriginal"], t.exif["timeZone"]) == ("2015-08-09T16:30:00+00:00", "Europe/Paris")),
    (dict(latitude=48.8584, longitude=2.2945), lambda t: (t.exif["latitude"], t.exif["longitude"]) == (48.8584, 2.2945)),
])
def test_each_scalar_field_moves(fields, expected, scene, run_job):
    lib = scene.library()
    photo = scene.edit(scene.photo(lib, "a.jpg"), **fields)
    run_and_check(scene, run_job, lib)
    assert expected(moved(scene, photo))


def test_a_rejected_rating_reads_back_as_immich_shows_it(scene, run_job):
    """Immich 3.1 writes -1 to the sidecar and reads it back as null: both sides agree after settling."""
    lib = scene.library()
    photo = scene.edit(scene.photo(lib, "a.jpg"), rating=-1)
    run_and_check(scene, run_job, lib)
    assert moved(scene, photo).exif["rating"] is None


def test_hierarchical_tags_move(scene, run_job):
    lib = scene.library()
    photo = scene.tag(scene.photo(lib, "a.jpg"), "Trips/Ireland/Dublin", "Family")
    run_and_check(scene, run_job, lib)
    values = {scene.world.tags[t].value for t in moved(scene, photo).tag_ids}
    assert {"Trips/Ireland/Dublin", "Family"} <= values


def test_tags_from_the_file_itself_are_not_lost(scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg", tags=["Embedded/Keyword"], description="from EXIF")
    run_and_check(scene, run_job, lib)
    assert moved(scene, photo).exif["description"] == "from EXIF"


def test_albums_including_one_shared_with_the_owner_as_editor(scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    own = scene.album("Mine", photo)
    shared = scene.album("Family", photo, owner=scene.other, shared_with={scene.admin: "editor"})
    run_and_check(scene, run_job, lib)
    twin = moved(scene, photo)
    assert twin.id in own.asset_ids and twin.id in shared.asset_ids


def test_album_cover_is_repointed_only_where_it_was_the_external_asset(scene, run_job):
    lib = scene.library()
    photo, other = scene.photo(lib, "a.jpg"), scene.photo(lib, "b.jpg")
    covered = scene.album("Covered", photo, other, cover=photo)
    elsewhere = scene.album("Elsewhere", photo, other, cover=other)
    run_and_check(scene, run_job, lib, runs=2, EXT2INT_BATCH_SIZE="1")
    assert covered.thumbnail_asset_id == moved(scene, photo).id or covered.thumbnail_asset_id == moved(scene, other).id
    assert scene.world.assets[elsewhere.thumbnail_asset_id].blob.sha1 == other.blob.sha1


def test_shared_links_move(scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    link = scene.link(photo)
    run_and_check(scene, run_job, lib)
    assert moved(scene, photo).id in link.asset_ids


def test_stack_membership_and_primary_move(scene, run_job):
    lib = scene.library()
    primary, second, third = (scene.photo(lib, n) for n in ("s1.jpg", "s2.jpg", "s3.jpg"))
    scene.stack(primary, second, third)
    run_and_check(scene, run_job, lib, runs=3, EXT2INT_BATCH_SIZE="1")
    stacks = {a.stack_id for a in scene.world.assets.values() if a.internal}
    assert len(stacks) == 1 and None not in stacks
    stack = scene.world.stacks[stacks.pop()]
    assert stack.primary_asset_id == moved(scene, primary).id
    assert {a.id for a in scene.world.stack_members(stack.id)} == {moved(scene, a).id for a in (primary, second, third)}


def test_a_stack_replaced_while_it_is_read_is_read_again(fake, scene, run_job):
    # Another member's move can replace the stack between the asset's read and the stack's (POST
    # /stacks merges stacks into a new one; so does the copy endpoint): that is no failure.
    lib = scene.library()
    primary, second = scene.photo(lib, "s1.jpg"), scene.photo(lib, "s2.jpg")
    scene.stack(primary, second)

    def replace_stack():
        with scene.world.lock:
            scene.world.create_stack(primary.owner_id, [primary.id])

    fake.faults.add("notify", method="GET", route="/stacks/{id}", nth=1)
    fake.on_notify = replace_stack
    run_and_check(scene, run_job, lib, EXT2INT_CONCURRENCY="1")
    assert moved(scene, primary).stack_id == moved(scene, second).stack_id is not None


def test_tags_undone_by_a_late_metadata_extraction_are_written_again(fake, scene, run_job):
    # Real Immich 3.1: an extraction that had read the file before the job added tags replaced them
    # with the file's (none), after they had shown. The job must notice before deleting, and redo.
    lib = scene.library()
    photo = scene.tag(scene.photo(lib, "a.jpg"), "Trips/Ireland")
    with scene.world.lock:
        photo.sidecar.pop("tags")  # Immich could not write the source's sidecar: the job adds the tags itself
    looks_after_tagging = []

    def late_extraction() -> None:
        """The job's first look at the target after tagging it sees the tags; before its second, the late
        extraction replaces them with the file's (none)."""
        route = fake.current_request().route
        if route == "/tags/assets":
            looks_after_tagging.append(0)
        elif route == "/assets/{id}" and looks_after_tagging:
            looks_after_tagging[-1] += 1
            if looks_after_tagging == [2]:
                with scene.world.lock:
                    for asset in scene.world.assets.values():
                        if asset.internal:
                            asset.tag_ids = []

    fake.faults.add("notify", method="PUT", route="/tags/assets", times=0)
    fake.faults.add("notify", method="GET", route="/assets/{id}", times=0)
    fake.on_notify = late_extraction
    run_and_check(scene, run_job, lib, EXT2INT_CONCURRENCY="1")
    assert len(looks_after_tagging) == 2, "the tags were written again"
    assert [scene.world.tags[t].value for t in moved(scene, photo).tag_ids] == ["Trips/Ireland"]


@pytest.mark.parametrize("sidecar", [True, False], ids=["sidecar", "no-sidecar"])
def test_values_a_copied_sidecar_brings_are_not_written_again(sidecar, fake, scene, run_job):
    """Immich reads a copied sidecar in a second extraction, after the new asset showed the file's own
    values. The job waits for it instead of writing description, rating and tags itself (each write
    costs Immich a sidecar write and two more extractions); a source without a sidecar (a read-only
    library) gets them written after the wait."""
    lib = scene.library()
    photo = scene.tag(scene.edit(scene.photo(lib, "a.jpg"), description="Cliffs at dawn", rating=4), "Trips/Ireland")
    with scene.world.lock:
        if not sidecar:
            scene.world.drop_sidecar(photo)  # Immich could not write the source's sidecar
        scene.world.sidecar_extraction_after_reads = 2  # behind other jobs: the job's first looks miss it
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    clock = Jumping()  # the waits pass through the job's clock seam, at their defaults
    result = run_job(scene.env(EXT2INT_CONCURRENCY="1", EXT2INT_SETTLE_TIMEOUT="60", EXT2INT_SETTLE_CONFIRM="5"), clock=clock)
    assert result.code == 0, result.stderr
    check(scene.world, snap)
    assert 0 < clock.waited < 60
    twin = moved(scene, photo)
    assert (twin.exif["description"], twin.exif["rating"]) == ("Cliffs at dawn", 4)
    assert [scene.world.tags[t].value for t in twin.tag_ids] == ["Trips/Ireland"]
    writes = [(e.method, e.route) for e in fake.log if (e.method, e.route) in (("PUT", "/assets"), ("PUT", "/tags/assets"))]
    assert writes == ([] if sidecar else [("PUT", "/assets"), ("PUT", "/tags/assets")]), writes
    if sidecar:  # each look is one read: the first (the sidecar not read yet), one more that misses it, the one
        # that finds it whole (compared as it is, not read again), and the gate's (it must show tags: no listing)
        looks = [e for e in fake.requests("GET", "/assets/{id}") if e.path.rstrip("/").endswith(twin.id)]
        assert len(looks) == 4, [e.path for e in looks]


def test_an_external_asset_stacked_with_an_internal_one(scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    internal = scene.internal(b"other bytes" * 100, "phone.jpg")
    scene.stack(internal, photo)
    run_and_check(scene, run_job, lib)
    assert moved(scene, photo).stack_id == internal.stack_id is not None


@pytest.mark.parametrize("edit", [
    [{"action": "crop", "parameters": {"x": 10, "y": 20, "width": 300, "height": 200}}],
    [{"action": "rotate", "parameters": {"angle": 90}}, {"action": "mirror", "parameters": {"axis": "horizontal"}}],
])
def test_non_destructive_edits_move(edit, scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    photo.edits = [{"id": f"e{i}", **e} for i, e in enumerate(edit)]
    run_and_check(scene, run_job, lib)
    assert [(e["action"], e["parameters"]) for e in moved(scene, photo).edits] == [(e["action"], e["parameters"]) for e in edit]


def test_asset_key_values_move_and_our_marker_records_provenance(scene, run_job):
    lib = scene.library()
    photo = scene.kv(scene.photo(lib, "a.jpg"), "note", {"text": "keep me", "n": 2})
    run_and_check(scene, run_job, lib)
    twin = moved(scene, photo)
    assert twin.metadata["note"][0] == {"text": "keep me", "n": 2}
    entry = twin.metadata["immich-ext2int"][0]["sources"][0]
    assert entry["source"] == photo.id and entry["library"] == lib.id and entry["path"] == photo.original_path
    assert entry["size"] == photo.blob.size and entry["sha1"]


def test_the_xmp_sidecar_is_copied_to_a_new_asset(scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg", sidecar={"darktable": "history of 12 edits", "description": "from xmp"})
    run_and_check(scene, run_job, lib)
    twin = moved(scene, photo)
    assert twin.sidecar["darktable"] == "history of 12 edits" and twin.exif["description"] == "from xmp"


def test_a_live_photo_video_half_stays_hidden(scene, run_job):
    lib = scene.library()
    still, motion = scene.live(lib, "l")
    run_and_check(scene, run_job, lib)
    assert moved(scene, motion).visibility == "hidden"
    assert moved(scene, still).live_photo_video_id == moved(scene, motion).id


def test_a_video_half_nothing_points_at_moves_alone_and_stays_hidden(scene, run_job):
    lib = scene.library()
    orphan = scene.video(lib, "orphan.mov")
    orphan.visibility = "hidden"
    run_and_check(scene, run_job, lib)
    assert moved(scene, orphan).visibility == "hidden"


# --- people ----------------------------------------------------------------------------------------


def test_faces_are_created_when_the_server_has_no_face_detection(scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    alice, bob = scene.person("Alice"), scene.person("Bob")
    scene.face(photo, alice, (100, 80, 220, 220))
    scene.face(photo, bob, (300, 100, 400, 230))
    run_and_check(scene, run_job, lib)
    faces = sorted((f.person_id, f.box) for f in scene.world.faces.values() if f.asset_id == moved(scene, photo).id)
    assert faces == sorted([(alice.id, (100, 80, 220, 220)), (bob.id, (300, 100, 400, 230))])


def test_detected_faces_are_assigned_to_the_same_people(scene, run_job):
    scene.world.features["facialRecognition"] = True
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg", faces=[(102, 78, 222, 218), (500, 50, 600, 150)])
    alice = scene.person("Alice")
    scene.face(photo, alice, (100, 80, 220, 220))
    run_and_check(scene, run_job, lib)
    twin = moved(scene, photo)
    faces = [f for f in scene.world.faces.values() if f.asset_id == twin.id]
    assert len(faces) == 2, "the detected face is reused, not doubled"
    assert {(f.person_id, f.source_type) for f in faces} == {(alice.id, "machine-learning"), (None, "machine-learning")}


def test_moves_wait_for_face_detection_then_finish_on_a_later_run(scene, run_job):
    scene.world.features["facialRecognition"] = True
    scene.world.detection_delay = 3600
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg", faces=[(100, 80, 220, 220)])
    scene.face(photo, scene.person("Alice"))
    snap = snapshot(scene.world, [lib.id], scene.admin.id)

    first = run_job(scene.env())
    assert first.code == 0 and first.counts()["waiting"] == 1
    assert "face detection" in first.outcomes("waiting")[0]["reason"]
    assert photo.deleted_at is None, "not deleted while its faces are not reconciled"

    scene.world.detection_delay = 0
    scene.fake.clear_log()
    second = run_job(scene.env())
    assert second.counts()["uploaded"] == 1
    assert not scene.fake.requests("POST", "/assets"), "the second phase does not transfer again"
    assert len(scene.fake.requests("GET", "/assets/{id}/original")) == 1, "the gate hashes an earlier run's proof again"
    check(scene.world, snap)


def test_faces_are_created_directly_when_detection_is_late(scene, run_job):
    scene.world.features["facialRecognition"] = True
    scene.world.detection_delay = 3600
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg", faces=[(100, 80, 220, 220)])
    scene.face(photo, scene.person("Alice"))
    run_and_check(scene, run_job, lib, EXT2INT_FACE_WAIT="0")
    assert any(f.asset_id == moved(scene, photo).id for f in scene.world.faces.values())


def test_faces_on_an_edited_photo_are_placed_after_the_edit(scene, run_job):
    lib = scene.library()
    photo = scene.crop(scene.photo(lib, "a.jpg"))
    scene.face(photo, scene.person("Alice"), (50, 40, 120, 130))
    run_and_check(scene, run_job, lib)
    assert moved(scene, photo).edits


def test_a_persons_only_photo_stays_its_cover(scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    alice = scene.person("Alice")
    scene.face(photo, alice)
    run_and_check(scene, run_job, lib, EXT2INT_DELETE="force")
    assert scene.world.faces[alice.feature_face_id].asset_id == moved(scene, photo).id


# --- merges ----------------------------------------------------------------------------------------


def test_merge_unites_sets_and_keeps_what_the_source_leaves_empty(scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    scene.tag(photo, "FromExternal")
    scene.album("External album", photo)
    twin = scene.internal(photo.blob.read_all(), description="phone caption", rating=2)
    scene.tag(twin, "FromPhone")
    phone_album = scene.album("Phone album", twin)
    run_and_check(scene, run_job, lib)
    values = {scene.world.tags[t].value for t in twin.tag_ids}
    assert {"FromExternal", "FromPhone"} <= values
    assert twin.exif["description"] == "phone caption" and twin.exif["rating"] == 2
    assert twin.id in phone_album.asset_ids


def test_an_internal_twin_with_its_own_values_is_never_overwritten_the_source_is_held(scene, run_job):
    lib = scene.library()
    photo = scene.edit(scene.photo(lib, "a.jpg"), description="external caption", rating=5)
    scene.album("Folder album", photo)
    twin = scene.internal(photo.blob.read_all(), description="phone caption", rating=2)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)

    result = run_job(scene.env())

    assert result.code == 0, result.stderr
    held, = result.outcomes("held")
    assert held["reason"] == "conflict" and photo.deleted_at is None
    assert sorted(d.split(":")[0] for d in held["differences"]) == ["description", "rating"]
    assert "external 'external caption', internal 'phone caption'" in " ".join(held["differences"])
    assert (twin.exif["description"], twin.exif["rating"]) == ("phone caption", 2), "nothing written to the twin"
    assert not [a for a in scene.world.albums.values() if twin.id in a.asset_ids], "held before any write"
    check(scene.world, snap, require_done=False)
    assert "HELD" not in result.stdout or "EXT2INT_ON_CONFLICT" in result.stdout

    again = run_job(scene.env())
    assert again.counts()["held"] == 1 and not scene.fake.requests("POST", "/assets")[1:], "held again, no new upload"


@pytest.mark.parametrize("policy,description,rating", [("external", "external caption", 5), ("internal", "phone caption", 2)])
def test_a_conflict_policy_chosen_by_the_user_decides(policy, description, rating, scene, run_job):
    lib = scene.library()
    photo = scene.edit(scene.photo(lib, "a.jpg"), description="external caption", rating=5)
    twin = scene.internal(photo.blob.read_all(), description="phone caption", rating=2)
    result = run_job(scene.env(EXT2INT_ON_CONFLICT=policy))
    assert result.code == 0 and result.counts()["merged"] == 1, result.stderr
    assert (twin.exif["description"], twin.exif["rating"]) == (description, rating)
    assert photo.deleted_at is not None


def test_resolving_a_conflict_in_immich_lets_the_next_run_move_it(scene, run_job):
    lib = scene.library()
    photo = scene.edit(scene.photo(lib, "a.jpg"), description="external caption")
    twin = scene.internal(photo.blob.read_all(), description="phone caption")
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    assert run_job(scene.env()).counts()["held"] == 1
    scene.edit(twin, description="external caption")  # the user decides in Immich
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    result = run_job(scene.env())
    assert result.counts()["merged"] == 1, result.report["outcomes"]
    check(scene.world, snap)


# --- what cannot move, and loops ---------------------------------------------------------------------


def test_plan_lists_what_cannot_move(scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    album = scene.album("Shared", photo, shared_with={scene.other: "viewer"})
    scene.comment(album, photo, scene.other)
    scene.memory(photo)
    result = run_job(scene.env(), "plan")
    assert result.code == 0
    assert "comments and likes in shared albums stay with the old asset" in result.stdout
    assert "shown in 1 memories" in result.stdout
    moved_run = run_job(scene.env())
    notes = moved_run.outcomes("uploaded")[0]["cannot_move"]
    assert any("1 comments/likes in shared album 'Shared'" in n for n in notes)


def test_a_file_immich_cannot_delete_is_recognised_when_it_comes_back(scene, run_job):
    lib = scene.library(read_only=True)
    photo = scene.photo(lib, "a.jpg")
    first = run_job(scene.env(EXT2INT_DELETE="force"))
    assert first.counts()["uploaded"] == 1
    assert photo.original_path in scene.world.disk, "the mount is read-only: the file stays"
    with scene.world.lock:
        again = scene.world.scan(lib)
    assert [a.original_path for a in again] == [photo.original_path]

    second = run_job(scene.env(EXT2INT_DELETE="force"))
    loop = second.outcomes("skipped")
    assert [o["reason"] for o in loop] == ["reimport_loop"] and "write access" in second.stdout + str(loop)
    assert again[0].deleted_at is None, "not moved, not deleted again and again"
    twin = moved(scene, photo)
    assert twin.deleted_at is None

    scene.fake.clear_log()
    third = run_job(scene.env(EXT2INT_DELETE="force"))
    assert [o["reason"] for o in third.outcomes("skipped")] == ["reimport_loop"]
    assert not scene.fake.requests("GET", "/assets/{id}/original"), "recognised without a new download"


# --- servers of different ages -----------------------------------------------------------------------


@pytest.mark.parametrize("version", [(2, 0, 0), (2, 1, 0), (2, 2, 0), (2, 4, 1), (2, 5, 0), (3, 0, 0), (3, 2, 0)])
def test_a_fully_curated_library_moves_on_every_supported_server(version, run_job):
    fake = FakeImmich(version).start()
    try:
        scene = Scene(fake)
        lib = scene.library()
        a, b = scene.photo(lib, "a.jpg", gps=(1.5, 2.5)), scene.photo(lib, "b.jpg")
        scene.favorite(a)
        scene.edit(a, description="d", rating=3, visibility="archive")
        scene.tag(a, "T/U")
        scene.album("Alb", a, b, cover=a)
        scene.stack(a, b)
        scene.link(b)
        scene.kv(b, "k", {"v": 1})
        scene.face(b, scene.person("P"))
        scene.live(lib, "l")
        scene.internal(scene.photo(lib, "dup.jpg").blob.read_all(), trashed=True)
        if version >= (2, 5, 0):
            scene.crop(a)
        snap = snapshot(scene.world, [lib.id], scene.admin.id)
        result = run_job(scene.env())
        assert result.code == 0, result.stderr
        check(scene.world, snap)
        if version < (2, 2, 0):
            assert not fake.requests("PUT", "/assets/copy")
        other = scene.library("other-library", paths=["/mnt/elsewhere"])
        scene.photo(other, "not-selected.jpg")
        again = run_job(scene.env(EXT2INT_LIBRARY_IDS=lib.id))
        assert again.report["listed"] == 0, "the listing's library filter works (3.2: the filter tree)"
    finally:
        fake.stop()

"""The trash watch (job/run/watch.py): what changes at the very moment of a delete (the instant no gate can
prove) survives Immich's purge of the trash. The fake's `at_delete` seam acts exactly between the gate's
last read and the delete; `nightly_deletion_check` is Immich's purge. `tests/e2e/test_trash_real.py`
repeats the two worlds on a real Immich."""

from __future__ import annotations

import time

from job import journal
from job.move.rules import trash_verdict
from job.record import Record
from tests.fake_immich import content
from tests.invariant import curated

DAY = 86400


def moved(scene, source):
    return next(a for a in scene.world.assets.values()
                if a.internal and a.blob.sha1 == source.blob.sha1 and a.owner_id == source.owner_id)


def entry_of(asset) -> dict:
    """The source's journal, as the job wrote it."""
    return asset.metadata[journal.KEY][0]


def age(asset, days: float) -> None:
    """The asset went to the trash `days` ago."""
    asset.deleted_at = time.time() - days * DAY


def purge(scene) -> None:
    """Immich's nightly deletion check, after the trash days."""
    with scene.world.lock:
        scene.world.nightly_deletion_check()


# --- the rule, pure ----------------------------------------------------------------------------------


def test_the_rule_restores_a_changed_file_or_new_curation_and_nothing_else():
    entry = {"sha1": "aa", "size": 10}
    assert trash_verdict(entry, None, None, None) == ""
    assert trash_verdict(entry, ("aa", 10), None, None) == "", "the same bytes under a new ETag"
    assert "file changed" in trash_verdict(entry, ("bb", 12), None, None)
    verified = Record(description="Eiffel", tags=frozenset({"Paris"}))
    assert trash_verdict(entry, None, Record(description="Eiffel"), verified) == "", "less than was moved: covered"
    reason = trash_verdict(entry, None, Record(description="Eiffel", rating=5, tags=frozenset({"Paris", "Best"})), verified)
    assert "rating 5" in reason and "tags {Best, Paris}" in reason
    # what the job itself does on the target (links, stacks) is no user's change at the instant
    assert trash_verdict(entry, None, Record(live_video="some-video"), Record()) == ""


# --- curation at the moment of the delete --------------------------------------------------------------


def test_curation_added_at_the_moment_of_the_delete_reaches_the_internal_copy(scene, run_job):
    lib = scene.library()
    photo = scene.curated_photo(lib)
    trip = scene.album("Best of")

    def at_delete(assets):  # the web UI open on that photo: saved while the gate had just finished
        if photo in assets and not scene.world.at_delete_done:
            scene.world.at_delete_done = True
            scene.world.write_fields(photo, {"description": "Eiffel at dawn", "rating": 5})
            trip.asset_ids.append(photo.id)

    scene.world.at_delete_done = False
    scene.world.at_delete = at_delete
    first = run_job(scene.env())
    assert first.code == 0 and first.counts()["uploaded"] == 1, first.stderr
    copy = moved(scene, photo)
    assert curated(scene.world, copy).description == "Eiffel", "the gate could not see it: the copy lacks it"
    assert photo.deleted_at is not None and entry_of(photo)["state"] == "trashed"

    second = run_job(scene.env())

    assert second.code == 0, second.stderr
    assert second.report["trashWatch"]["restored"] == 1
    assert any("restored from the trash" in n and photo.original_path in n and "rating 5" in n
               for n in second.report["notes"]), second.report["notes"]
    again = [o for o in second.outcomes() if o["kind"] in ("uploaded", "merged")]
    assert [o["target_id"] for o in again] == [copy.id], "the same run moved it again, into the same copy"
    record = curated(scene.world, copy)
    assert (record.description, record.rating) == ("Eiffel at dawn", 5)
    assert trip.id in record.albums and record.favorite and "Trips/Paris" in record.tags
    assert photo.deleted_at is not None, "trashed again, once proven"

    third = run_job(scene.env())
    assert third.report["trashWatch"]["restored"] == 0, third.report["notes"]
    assert third.report["trashWatch"] == {"looked": 1, "proven": 1, "checked": 0, "restored": 0, "trashDays": 30}
    assert entry_of(photo).get("watched"), "proven once: later runs only check its file near the purge"
    fourth = run_job(scene.env())
    assert fourth.report["trashWatch"]["proven"] == 0 and fourth.report["trashWatch"]["looked"] == 1

    age(photo, 31)
    purge(scene)
    assert photo.id not in scene.world.assets
    record = curated(scene.world, copy)
    assert (record.description, record.rating) == ("Eiffel at dawn", 5) and trip.id in record.albums


def test_a_file_replaced_at_the_moment_of_the_delete_is_restored_before_the_purge(scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    old = photo.blob.sha1

    def at_delete(assets):  # a sync tool's atomic rename lands between the gate's hash and the delete
        if photo in assets and scene.world.on_disk(photo.original_path).read_all() != content(77):
            scene.world.rewrite_file(photo.original_path, type(photo.blob).of(content(77)), "2026-11-30T10:00:00.000Z")

    scene.world.at_delete = at_delete
    assert run_job(scene.env()).counts()["uploaded"] == 1
    assert photo.deleted_at is not None

    second = run_job(scene.env())

    assert second.report["trashWatch"]["restored"] == 1
    assert any("file changed" in n for n in second.report["notes"]), second.report["notes"]
    assert photo.deleted_at is None, "back from the trash: the purge cannot take the new bytes"
    assert {o["path"]: o["reason"] for o in second.outcomes("held")} == {photo.original_path: "file_changed"}
    age_all_trashed(scene, 31)
    purge(scene)
    assert scene.world.on_disk(photo.original_path).read_all() == content(77), "the new version is on disk"

    scene.scan(lib)  # Immich's next scan reads the new version
    third = run_job(scene.env())
    assert third.code == 0 and third.counts().get("uploaded") == 1, third.stderr
    versions = {a.blob.sha1 for a in scene.world.assets.values() if a.internal}
    assert old in versions and type(photo.blob).of(content(77)).sha1 in versions, "both versions are kept"


def age_all_trashed(scene, days: float) -> None:
    for asset in scene.world.assets.values():
        if asset.deleted_at is not None:
            age(asset, days)


def test_near_the_purge_the_file_is_checked_again(scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    assert run_job(scene.env()).counts()["uploaded"] == 1
    assert run_job(scene.env()).report["trashWatch"]["proven"] == 1
    age(photo, 12)  # in the trash for days: outside both windows, the watch does not look
    quiet = run_job(scene.env())
    assert quiet.report["trashWatch"]["looked"] == 0
    scene.rewrite(photo.original_path, content(55))  # a sync tool, days after the move
    age(photo, 29)  # the purge is a day away

    result = run_job(scene.env())

    assert result.report["trashWatch"]["restored"] == 1 and photo.deleted_at is None
    age_all_trashed(scene, 31)
    purge(scene)
    assert scene.world.on_disk(photo.original_path).read_all() == content(55)


def test_the_watch_reads_nothing_per_asset_outside_its_windows(scene, run_job, fake):
    lib = scene.library()
    photos = [scene.photo(lib, f"p{i}.jpg") for i in range(6)]
    assert run_job(scene.env()).counts()["uploaded"] == 6
    for photo in photos:
        age(photo, 10)
    fake.log.clear()
    result = run_job(scene.env())
    assert result.report["trashWatch"]["looked"] == 0
    per_asset = [r for r in fake.log if r.method == "GET" and any(p.id in r.path for p in photos)]
    assert per_asset == [], "no read of a source the windows leave out"
    listings = [r.body or {} for r in fake.log if r.method == "POST" and r.path.endswith("/search/metadata")]
    watch = [b for b in listings if b.get("trashedAfter") or b.get("trashedBefore")]
    assert len(watch) <= 2, "the watch: one listing page per window of the library"
    assert len(listings) - len(watch) <= 3, "and the run's own: one empty page per phase of its listing"


def test_verify_says_what_it_would_restore_and_changes_nothing(scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    assert run_job(scene.env()).counts()["uploaded"] == 1
    scene.rewrite(photo.original_path, content(66))

    result = run_job(scene.env(), command="verify")

    assert any("to restore from the trash" in n and photo.original_path in n for n in result.report["notes"])
    assert photo.deleted_at is not None, "verify changes nothing"
    assert run_job(scene.env()).report["trashWatch"]["restored"] == 1


def test_force_mode_leaves_nothing_to_watch(scene, run_job):
    lib = scene.library()
    scene.photo(lib, "a.jpg")
    assert run_job(scene.env(EXT2INT_DELETE="force")).counts()["uploaded"] == 1
    result = run_job(scene.env(EXT2INT_DELETE="force"))
    assert result.report["trashWatch"]["looked"] == 0

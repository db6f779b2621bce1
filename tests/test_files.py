"""Every file a delete removes: the original AND its XMP sidecar, under any of the names Immich crawled it
by. Worlds as photographers have them, on the fake; `tests/e2e/test_files_real.py` repeats them on a real
Immich. The invariant checks every user's assets, originals and sidecar files on disk."""

from __future__ import annotations

import pytest

from tests.fake_immich import content
from tests.invariant import check, curated, snapshot

SIDECAR = {"description": "Cliffs at dawn", "rating": 4, "tags": ["Trips/Ireland"], "darktable": "history of 12 edits"}


def moved(scene, source):
    """`source`'s internal copy: the same bytes, of the same owner."""
    return next(a for a in scene.world.assets.values()
                if a.internal and a.blob.sha1 == source.blob.sha1 and a.owner_id == source.owner_id)


def held_reasons(result) -> dict[str, str]:
    return {o["path"]: o["reason"] for o in result.outcomes("held")}


def raw_and_jpeg(scene, lib, stem: str = "IMG_1", **values):
    """A camera's pair in one folder with the one sidecar Lightroom writes, `IMG_1.xmp`; both read it."""
    scene.sidecar(lib, f"{stem}.xmp", **(values or SIDECAR))
    raw = scene.photo(lib, f"{stem}.CR2", taken=None)
    jpeg = scene.photo(lib, f"{stem}.JPG", taken=None)
    assert raw.sidecar_path == jpeg.sidecar_path == f"{lib.import_paths[0]}/{stem}.xmp"
    return raw, jpeg


def assert_holds_sidecar(scene, copy) -> None:
    record = curated(scene.world, copy)
    assert (record.description, record.rating, record.tags) == ("Cliffs at dawn", 4, frozenset({"Trips/Ireland"}))
    assert copy.sidecar["darktable"] == "history of 12 edits", "the sidecar file itself came with the copy"


# --- a RAW+JPEG pair shares IMG_1.xmp ---------------------------------------------------------------------


@pytest.mark.parametrize("batch,delete", [("100", "trash"), ("1", "trash"), ("1", "force")])
def test_a_raw_jpeg_pair_sharing_one_sidecar_moves_together(batch, delete, scene, run_job):
    lib = scene.library("camera")
    raw, jpeg = raw_and_jpeg(scene, lib)
    scene.favorite(jpeg)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)

    result = run_job(scene.env(EXT2INT_BATCH_SIZE=batch, EXT2INT_DELETE=delete))

    assert result.code == 0, result.stderr
    moved_paths = {o["path"] for o in result.outcomes() if o["kind"] == "uploaded"}
    assert {raw.original_path, jpeg.original_path} <= moved_paths, "the pair moved in one run, even with a batch of 1"
    assert result.report["assetsMoved"] == 2
    check(scene.world, snap, delete_mode=delete)
    for source in (raw, jpeg):
        assert_holds_sidecar(scene, moved(scene, source))
    assert moved(scene, jpeg).is_favorite


def test_the_pair_is_deleted_in_one_request_after_both_are_proven(scene, run_job, fake):
    lib = scene.library("camera")
    raw, jpeg = raw_and_jpeg(scene, lib)
    result = run_job(scene.env(EXT2INT_CONCURRENCY="1"))
    assert result.code == 0, result.stderr
    deletes = [r for r in fake.log if r.method == "DELETE" and r.path.endswith("/assets")]
    assert len(deletes) == 1 and raw.deleted_at is not None and jpeg.deleted_at is not None


def test_a_pair_with_a_sidecar_each_moves_each_with_its_own(scene, run_job):
    lib = scene.library("camera")
    scene.sidecar(lib, "IMG_1.JPG.xmp", description="the jpeg's", darktable="jpeg history")
    scene.sidecar(lib, "IMG_1.CR2.xmp", description="the raw's", darktable="raw history")
    raw, jpeg = scene.photo(lib, "IMG_1.CR2"), scene.photo(lib, "IMG_1.JPG")
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    result = run_job(scene.env())
    assert result.code == 0 and result.counts()["uploaded"] == 2, result.stderr
    check(scene.world, snap)
    assert moved(scene, raw).sidecar["darktable"] == "raw history" and curated(scene.world, moved(scene, raw)).description == "the raw's"
    assert moved(scene, jpeg).sidecar["darktable"] == "jpeg history"


def test_an_apple_export_with_one_sidecar_moves_as_one_live_photo(scene, run_job):
    lib = scene.library("export")
    scene.sidecar(lib, "IMG_7.xmp", **SIDECAR)
    still = scene.photo(lib, "IMG_7.HEIC", content_id="CID-7", taken=None)
    video = scene.video(lib, "IMG_7.MOV", content_id="CID-7")
    assert still.live_photo_video_id == video.id and video.sidecar_path == still.sidecar_path
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    result = run_job(scene.env())
    assert result.code == 0 and result.report["assetsMoved"] == 2, result.stderr
    check(scene.world, snap)
    assert_holds_sidecar(scene, moved(scene, still))
    assert moved(scene, still).live_photo_video_id == moved(scene, video).id


# --- a sidecar file that went missing -------------------------------------------------------------------


def test_an_asset_whose_sidecar_went_missing_moves_with_its_values_and_says_so(scene, run_job, fake):
    lib = scene.library("camera")
    raw, jpeg = raw_and_jpeg(scene, lib)
    scene.album("Ireland", jpeg)
    with scene.world.lock:  # deleted by hand, or by an older version of this job moving the other half
        del scene.world.disk_sidecars[jpeg.sidecar_path]
    snap = snapshot(scene.world, [lib.id], scene.admin.id)

    result = run_job(scene.env())

    assert result.code == 0, result.stderr
    check(scene.world, snap)
    for source in (raw, jpeg):
        record = curated(scene.world, moved(scene, source))
        assert (record.description, record.rating, record.tags) == ("Cliffs at dawn", 4, frozenset({"Trips/Ireland"}))
    assert curated(scene.world, moved(scene, jpeg)).albums
    notes = [n for o in result.outcomes() for n in o["cannot_move"]]
    assert len(notes) == 2 and all("sidecar" in n and "missing on disk" in n for n in notes)
    assert sum("missing on disk" in line for line in result.stderr.splitlines()) == 2, "said once per asset"
    assert any(r.status == 500 and r.path.endswith("/assets/copy") for r in fake.log), "Immich refused the copy with it"
    again = run_job(scene.env())
    assert again.code == 0 and not again.outcomes("failed"), "nothing fails for ever"


# --- who else may read the sidecar ----------------------------------------------------------------------


def test_the_other_half_in_an_unselected_library_holds_the_pair(scene, run_job):
    jpegs = scene.library("jpegs", paths=["/mnt/camera"], exclude=["**/*.CR2"])
    raws = scene.library("raws", paths=["/mnt/camera"], exclude=["**/*.JPG"])
    scene.sidecar(jpegs, "IMG_1.xmp", **SIDECAR)
    jpeg = scene.photo(jpegs, "IMG_1.JPG")
    raw = scene.photo(raws, "IMG_1.CR2")
    assert raw.sidecar_path == jpeg.sidecar_path and not scene.scan(jpegs)
    snap = snapshot(scene.world, [jpegs.id], scene.admin.id)

    result = run_job(scene.env(EXT2INT_LIBRARY_IDS=jpegs.id, EXT2INT_DELETE="force"))

    assert result.code == 0, result.stderr
    assert held_reasons(result) == {jpeg.original_path: "sidecar_shared"}
    assert "IMG_1.CR2" in result.outcomes("held")[0]["differences"][0]
    check(scene.world, snap, delete_mode="force", held={jpeg.id})
    both = run_job(scene.env(EXT2INT_LIBRARY_IDS=f"{jpegs.id},{raws.id}", EXT2INT_DELETE="force"))
    assert both.code == 0 and both.counts()["uploaded"] == 2, both.report["counts"]


def test_another_users_library_that_may_hold_the_other_half_holds_it(scene, run_job, tmp_path):
    mine = scene.library("mine", paths=["/mnt/camera"], exclude=["**/*.CR2"])
    theirs = scene.library("theirs", owner=scene.other, paths=["/mnt/camera"], exclude=["**/*.JPG"])
    scene.sidecar(mine, "IMG_1.xmp", **SIDECAR)
    jpeg = scene.photo(mine, "IMG_1.JPG")
    raw = scene.photo(theirs, "IMG_1.CR2")
    snap = snapshot(scene.world, [mine.id], scene.admin.id)

    result = run_job(scene.env(EXT2INT_DELETE="force"))  # the admin's key alone cannot search their assets

    assert held_reasons(result) == {jpeg.original_path: "sidecar_shared"}
    assert "Other's library 'theirs'" in result.outcomes("held")[0]["differences"][0]
    check(scene.world, snap, delete_mode="force", held={jpeg.id})

    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "admin").write_text(scene.key)
    (keys / "other").write_text(scene.other_key)
    env = {k: v for k, v in scene.env(EXT2INT_DELETE="force").items() if k != "IMMICH_API_KEY"}
    snap = snapshot(scene.world, [mine.id, theirs.id])
    family = run_job({**env, "IMMICH_API_KEYS_DIR": str(keys)})
    assert family.code == 0 and family.counts()["uploaded"] == 2, family.report["counts"]
    check(scene.world, snap, delete_mode="force")
    assert moved(scene, raw).owner_id == scene.other.id and moved(scene, raw).sidecar["darktable"]


# --- one folder under two names -------------------------------------------------------------------------


def linked_world(scene, *, owner_of_second=None):
    """/photos is a symbolic link to /mnt/photos (or the share mounted twice): one library over each name."""
    scene.world.link("/photos", "/mnt/photos")
    first = scene.library("mounted", paths=["/mnt/photos"])
    second = scene.library("linked", owner=owner_of_second, paths=["/photos"])
    photo = scene.photo(first, "a.jpg")
    alias, = scene.scan(second)
    assert alias.original_path == "/photos/a.jpg" and scene.world.on_disk(alias.original_path) is not None
    return first, second, photo, alias


def test_another_users_library_over_an_alias_holds_once_the_alias_is_declared(scene, run_job):
    first, second, photo, alias = linked_world(scene, owner_of_second=scene.other)
    scene.album("Her album", alias, owner=scene.other)
    snap = snapshot(scene.world, [first.id], scene.admin.id)
    result = run_job(scene.env(EXT2INT_DELETE="force", EXT2INT_PATH_ALIASES="/mnt/photos=/photos"))
    assert held_reasons(result) == {photo.original_path: "shared_with_user"}
    check(scene.world, snap, delete_mode="force", held={photo.id})


def test_own_libraries_over_two_names_move_together_or_hold(scene, run_job):
    first, second, photo, alias = linked_world(scene)
    scene.favorite(alias)
    scene.album("Linked", alias)
    scene.edit(photo, description="curated under the mount")
    aliases = "/photos=/mnt/photos"

    alone = run_job(scene.env(EXT2INT_LIBRARY_IDS=first.id, EXT2INT_PATH_ALIASES=aliases, EXT2INT_DELETE="force"))
    assert held_reasons(alone) == {photo.original_path: "shared_unselected"}

    snap = snapshot(scene.world, [first.id, second.id], scene.admin.id)
    both = run_job(scene.env(EXT2INT_PATH_ALIASES=aliases, EXT2INT_DELETE="force"))
    assert both.code == 0 and both.report["assetsMoved"] == 2 and both.counts()["uploaded"] == 1, both.report["counts"]
    check(scene.world, snap, delete_mode="force")
    record = curated(scene.world, moved(scene, photo))
    assert record.favorite and record.albums and record.description == "curated under the mount"


def test_own_libraries_over_two_names_nobody_declared_are_recognised_by_the_file_itself(scene, run_job, fake):
    """A second mount inside Immich's container: not declared, not seen by the job. The same file name, size
    and time, the same ETag, and the same bytes hashed make it one file under two names."""
    first, second, photo, alias = linked_world(scene)
    scene.album("Linked", alias)
    scene.photo(second, "/photos/b.jpg", mtime="2020-01-01T00:00:00.000Z")  # another file: not the same name
    alone = run_job(scene.env(EXT2INT_LIBRARY_IDS=first.id, EXT2INT_DELETE="force"))
    assert held_reasons(alone) == {photo.original_path: "shared_unselected"}
    assert alias.id in scene.world.assets and scene.world.on_disk(alias.original_path) is not None

    snap = snapshot(scene.world, [first.id, second.id], scene.admin.id)
    both = run_job(scene.env(EXT2INT_DELETE="force"))
    assert both.code == 0 and both.report["assetsMoved"] == 3, both.report["counts"]
    check(scene.world, snap, delete_mode="force")
    assert curated(scene.world, moved(scene, photo)).albums


def test_another_users_library_over_a_name_nobody_declared_is_recognised_with_their_key(scene, run_job, tmp_path):
    first, theirs, photo, alias = linked_world(scene, owner_of_second=scene.other)
    scene.album("Hers", alias, owner=scene.other)
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "admin").write_text(scene.key)
    (keys / "other").write_text(scene.other_key)
    env = {k: v for k, v in scene.env(EXT2INT_DELETE="force").items() if k != "IMMICH_API_KEY"}
    env["IMMICH_API_KEYS_DIR"] = str(keys)

    mine_only = run_job({**env, "EXT2INT_LIBRARY_IDS": first.id})
    assert held_reasons(mine_only) == {photo.original_path: "shared_with_user"}
    assert alias.deleted_at is None and scene.world.on_disk(alias.original_path) is not None

    snap = snapshot(scene.world, [first.id, theirs.id])
    both = run_job(env)
    assert both.code == 0 and both.counts()["uploaded"] == 2, both.report["counts"]
    check(scene.world, snap, delete_mode="force")
    assert curated(scene.world, moved(scene, alias)).albums and moved(scene, alias).id != moved(scene, photo).id


def test_a_copy_with_the_same_name_size_and_time_but_other_bytes_is_another_file(scene, run_job):
    first = scene.library("mounted", paths=["/mnt/photos"])
    backup = scene.library("backup", paths=["/backup"])
    photo = scene.photo(first, "a.jpg", seed=5, mtime="2021-01-01T00:00:00.000Z")
    other = scene.photo(backup, "a.jpg", seed=6, mtime="2021-01-01T00:00:00.000Z")  # same size and time
    snap = snapshot(scene.world, [first.id], scene.admin.id)
    result = run_job(scene.env(EXT2INT_LIBRARY_IDS=first.id, EXT2INT_DELETE="force"))
    assert result.code == 0 and result.counts()["uploaded"] == 1 and not result.outcomes("held"), result.report["counts"]
    check(scene.world, snap, delete_mode="force")
    assert other.deleted_at is None and scene.world.on_disk("/backup/a.jpg") is not None


def test_a_wrong_alias_never_makes_two_files_one(scene, run_job):
    first = scene.library("mounted", paths=["/mnt/photos"])
    second = scene.library("other disk", paths=["/photos"])
    photo = scene.photo(first, "a.jpg", seed=1)
    other = scene.photo(second, "a.jpg", seed=2, mtime="2021-01-01T00:00:00.000Z")  # another file, same name
    snap = snapshot(scene.world, [first.id, second.id], scene.admin.id)
    result = run_job(scene.env(EXT2INT_PATH_ALIASES="/mnt/photos=/photos", EXT2INT_DELETE="force"))
    assert set(held_reasons(result).values()) == {"names_differ"}
    check(scene.world, snap, delete_mode="force", held={photo.id, other.id})


def test_libraries_says_which_libraries_share_files_and_what_it_means(scene, run_job):
    scene.world.link("/photos", "/mnt/photos")
    scene.library("mounted", paths=["/mnt/photos"])
    scene.library("linked", paths=["/photos/2020"])
    scene.library("hers", owner=scene.other, paths=["/mnt/photos/shared"])
    scene.library("alone", paths=["/mnt/elsewhere"])
    result = run_job(scene.env(EXT2INT_PATH_ALIASES="/photos=/mnt/photos"), command="libraries")
    assert result.code == 0, result.stderr
    shared = sorted(line for line in result.stdout.splitlines() if line.startswith("shared: "))
    assert len(shared) == 2, result.stdout  # 'linked' (2020) and 'hers' (shared) are two other folders
    linked, = [line for line in shared if "'linked'" in line and "'mounted'" in line]
    assert "/photos/2020 (under another name" in linked and "select both" in linked
    hers, = [line for line in shared if "'hers'" in line and "'mounted'" in line]
    assert "/mnt/photos/shared (the same path)" in hers and "both owners' keys" in hers
    assert not [line for line in shared if "'alone'" in line]


def test_a_copy_of_a_file_in_a_folder_below_is_never_taken_for_another_name(scene, run_job):
    lib = scene.library("photos")
    scene.library("elsewhere", paths=["/mnt/elsewhere"])  # two import paths: names are looked for
    data = content(scene.next_seed())
    first = scene.photo(lib, "a.jpg", data=data, mtime="2021-01-01T00:00:00.000Z")
    second = scene.photo(lib, "copy/a.jpg", data=data, mtime="2021-01-01T00:00:00.000Z")  # cp -p
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    result = run_job(scene.env(EXT2INT_LIBRARY_IDS=lib.id))
    assert result.code == 0 and result.counts()["uploaded"] == 1 and result.counts()["merged"] == 1, result.report["counts"]
    check(scene.world, snap)
    assert first.deleted_at is not None and second.deleted_at is not None

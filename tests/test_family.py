"""A family server: one job with every user's key (IMMICH_API_KEYS_DIR) moves each user's libraries with
their own key, and a shared folder's file goes only once every user's asset of it has moved, each into its
owner's internal library with its owner's curation. Built as a family builds it: a shared folder that each
user mounted as their own external library, and a private library each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CANARY
from tests.invariant import check, curated, snapshot


def keys_dir(tmp_path: Path, **keys: str) -> Path:
    folder = tmp_path / "keys"
    folder.mkdir(exist_ok=True)
    for name, key in keys.items():
        (folder / name).write_text(key + "\n")
    (folder / "..data").mkdir(exist_ok=True)  # what a Kubernetes Secret mount holds beside the keys: not a key
    return folder


def env_for(scene, folder: Path, **more: str) -> dict[str, str]:
    env = scene.env(**more)
    env.pop("IMMICH_API_KEY")
    return {**env, "IMMICH_API_KEYS_DIR": str(folder)}


def internal_copy(scene, source):
    return next(a for a in scene.world.assets.values()
                if a.internal and a.owner_id == source.owner_id and a.blob.sha1 == source.blob.sha1)


@pytest.fixture
def family(scene):
    """Mum (admin) and Dad each mounted /mnt/family as their own library; each has a private one too."""
    mum, dad = scene.admin, scene.other
    shared_mum = scene.library("Family (Mum)", paths=["/mnt/family"])
    shared_dad = scene.library("Family (Dad)", owner=dad, paths=["/mnt/family"])
    beach = scene.photo(shared_mum, "beach.jpg")
    cake = scene.photo(shared_mum, "cake.jpg")
    beach_dad, cake_dad = sorted(scene.scan(shared_dad), key=lambda a: a.original_path)
    # each curates their own copy
    scene.favorite(beach)
    scene.album("Holidays", beach)
    scene.edit(cake, description="Mum's birthday")
    scene.album("Dad's best", beach_dad, owner=dad)
    scene.tag(cake_dad, "Family/Birthdays")
    scene.face(beach_dad, scene.person("Lea", owner=dad))
    private_mum = scene.library("Mum's phone export", paths=["/mnt/mum"])
    private_dad = scene.library("Dad's scans", owner=dad, paths=["/mnt/dad"])
    mine = scene.photo(private_mum, "mum.jpg")
    his = scene.photo(private_dad, "dad.jpg")
    libraries = [shared_mum.id, shared_dad.id, private_mum.id, private_dad.id]
    return {"mum": mum, "dad": dad, "shared": (beach, cake, beach_dad, cake_dad), "private": (mine, his),
            "libraries": libraries}


def test_every_users_key_moves_the_whole_family_server_and_each_shared_file_goes_once(scene, family, run_job, tmp_path):
    beach, cake, beach_dad, cake_dad = family["shared"]
    before = {a.id: curated(scene.world, a) for a in family["shared"]}
    snap = snapshot(scene.world, family["libraries"])
    folder = keys_dir(tmp_path, mum=scene.key, dad=scene.other_key)

    result = run_job(env_for(scene, folder, EXT2INT_DELETE="force"))

    assert result.code == 0, result.stderr
    assert result.counts()["uploaded"] == 6 and not result.outcomes("held"), result.report["counts"]
    for source in (beach, cake, beach_dad, cake_dad, *family["private"]):
        target = internal_copy(scene, source)
        assert target.owner_id == source.owner_id, "each user's photo in their own internal library"
    assert internal_copy(scene, beach).is_favorite and not internal_copy(scene, beach_dad).is_favorite
    assert curated(scene.world, internal_copy(scene, cake)).description == "Mum's birthday"
    # One file, one sidecar: Immich wrote Mum's description into /mnt/family/cake.jpg.xmp, and Dad's tag into
    # the same file (handleSidecarWrite writes only the edited fields), so Dad's copy reads both from it
    assert curated(scene.world, internal_copy(scene, cake_dad)).description == "Mum's birthday"
    assert curated(scene.world, internal_copy(scene, cake_dad)).tags == before[cake_dad.id].tags
    assert curated(scene.world, internal_copy(scene, beach_dad)).faces == before[beach_dad.id].faces
    removed = [path for path, _, _ in scene.world.removed_files]
    assert sorted(removed) == sorted(set(removed)), "each file deleted once"
    assert {"/mnt/family/beach.jpg", "/mnt/family/cake.jpg"} <= set(removed)
    # the deletes of a shared file came after both users' copies were verified: the invariant checks that
    # every user who had the file holds it internally now
    check(scene.world, snap, delete_mode="force")
    owners = result.report["libraryOwners"]
    assert sorted(set(owners.values())) == ["Admin", "Other"]
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    start = next(line for line in lines if line["message"].startswith("run: 4 libraries"))
    assert "Admin (key mum" in start["message"] and "Other (key dad" in start["message"]
    assert scene.key not in result.stderr and scene.other_key not in result.stderr


def test_a_missing_key_holds_exactly_the_shared_files_and_says_whose_key_would_finish_them(
        scene, family, run_job, tmp_path):
    beach, cake, beach_dad, cake_dad = family["shared"]
    snap = snapshot(scene.world, family["libraries"][:1] + family["libraries"][2:3])
    folder = keys_dir(tmp_path, mum=scene.key)

    result = run_job(env_for(scene, folder, EXT2INT_DELETE="force"))

    assert result.code == 0, result.stderr
    held = {o["path"]: o for o in result.outcomes("held")}
    assert set(held) == {"/mnt/family/beach.jpg", "/mnt/family/cake.jpg"}
    for outcome in held.values():
        assert outcome["reason"] == "shared_with_user"
        assert "Other's library 'Family (Dad)'" in outcome["differences"][0]
        assert "give this run Other's API key too" in outcome["differences"][0]
    assert result.counts()["uploaded"] == 1, "Mum's private library moved"
    assert all(a.deleted_at is None for a in family["shared"]) and "/mnt/family/beach.jpg" in scene.world.disk
    check(scene.world, snap, delete_mode="force", held={beach.id, cake.id})


def test_the_batch_is_the_runs_and_shared_fairly(scene, run_job, tmp_path):
    mine = scene.library("Mum's", paths=["/mnt/mum"])
    his = scene.library("Dad's", owner=scene.other, paths=["/mnt/dad"])
    for i in range(6):
        scene.photo(mine, f"m{i}.jpg")
        scene.photo(his, f"d{i}.jpg")
    folder = keys_dir(tmp_path, mum=scene.key, dad=scene.other_key)
    result = run_job(env_for(scene, folder, EXT2INT_BATCH_SIZE="4", EXT2INT_CONCURRENCY="1"))
    assert result.code == 0 and result.counts()["uploaded"] == 4
    moved = [o["library_id"] for o in result.outcomes("uploaded")]
    assert moved.count(mine.id) == 2 and moved.count(his.id) == 2, "neither user starves the other"
    assert result.report["remaining"] == {mine.id: 4, his.id: 4}


def test_a_refused_key_stops_only_its_users_part(scene, fake, family, run_job, tmp_path):
    folder = keys_dir(tmp_path, mum=scene.key, dad=scene.other_key, old=CANARY)
    snap = snapshot(scene.world, family["libraries"])
    result = run_job(env_for(scene, folder))
    assert result.code == 1, "a key could not be used"
    line = next(line for line in result.stderr.splitlines() if line.startswith("ext2int: the key in old"))
    assert "cannot be used" in line and "refused" in line.lower()
    assert result.counts()["uploaded"] == 6, "both other users' parts went on"
    assert CANARY not in result.stdout + result.stderr + json.dumps(result.report)
    check(scene.world, snap)


def test_a_key_lacking_a_permission_stops_only_its_users_part(scene, fake, family, run_job, tmp_path):
    restricted = scene.world.add_key(scene.other, permissions=["asset.read", "album.read", "user.read"])
    folder = keys_dir(tmp_path, mum=scene.key, dad=restricted)
    beach, cake, _, _ = family["shared"]
    snap = snapshot(scene.world, family["libraries"][:1] + family["libraries"][2:3])
    result = run_job(env_for(scene, folder))
    assert result.code == 1
    assert any(line.startswith("ext2int: the key in dad cannot be used") and "asset.upload" in line
               for line in result.stderr.splitlines())
    held = {o["path"]: o["reason"] for o in result.outcomes("held")}
    assert held == {"/mnt/family/beach.jpg": "shared_with_user", "/mnt/family/cake.jpg": "shared_with_user"}
    assert result.counts()["uploaded"] == 1
    check(scene.world, snap, held={beach.id, cake.id})


def test_a_shared_file_is_not_deleted_until_the_other_users_copy_is_verified(scene, fake, family, run_job, tmp_path):
    """Dad's upload of the shared file fails: Mum's copy waits, nothing of the file is deleted, and the
    next run finishes both."""
    beach, cake, beach_dad, cake_dad = family["shared"]
    snap = snapshot(scene.world, family["libraries"])
    folder = keys_dir(tmp_path, mum=scene.key, dad=scene.other_key)
    fake.faults.add("status", method="POST", route="/assets", status=500, times=0, key=scene.other_key)
    first = run_job(env_for(scene, folder, EXT2INT_DELETE="force"))
    fake.faults.clear()
    assert first.code == 1
    assert beach.deleted_at is None and cake.deleted_at is None, "Mum's shared assets stay while Dad's failed"
    assert {"/mnt/family/beach.jpg", "/mnt/family/cake.jpg"} <= set(scene.world.disk)
    waiting = {o["path"] for o in first.outcomes("waiting")}
    assert {"/mnt/family/beach.jpg", "/mnt/family/cake.jpg"} <= waiting
    check(scene.world, snap, delete_mode="force", require_done=False)
    second = run_job(env_for(scene, folder, EXT2INT_DELETE="force"))
    assert second.code == 0, second.stderr
    check(scene.world, snap, delete_mode="force")


def test_a_live_photo_in_the_shared_folder_moves_for_both_users(scene, run_job, tmp_path):
    shared_mum = scene.library("Family (Mum)", paths=["/mnt/family"])
    shared_dad = scene.library("Family (Dad)", owner=scene.other, paths=["/mnt/family"])
    still, motion = scene.live(shared_mum, "IMG_1")
    scanned = {a.original_path: a for a in scene.scan(shared_dad)}
    with scene.world.lock:
        scene.world.before_link(scene.other.id, scanned["/mnt/family/IMG_1.mov"].id)
        scanned["/mnt/family/IMG_1.jpg"].live_photo_video_id = scanned["/mnt/family/IMG_1.mov"].id
    snap = snapshot(scene.world, [shared_mum.id, shared_dad.id])
    folder = keys_dir(tmp_path, mum=scene.key, dad=scene.other_key)
    result = run_job(env_for(scene, folder, EXT2INT_DELETE="force"))
    assert result.code == 0, result.stderr
    assert result.counts()["uploaded"] == 2 and sum(o["assets"] for o in result.outcomes("uploaded")) == 4
    for owner in (scene.admin, scene.other):
        new_still = next(a for a in scene.world.assets.values()
                         if a.internal and a.owner_id == owner.id and a.blob.sha1 == still.blob.sha1)
        assert scene.world.assets[new_still.live_photo_video_id].owner_id == owner.id, "linked to the user's own video"
    check(scene.world, snap, delete_mode="force")


def test_the_other_users_asset_of_a_shared_file_comes_with_it_past_the_batch_limit(scene, family, run_job, tmp_path):
    beach, cake, beach_dad, cake_dad = family["shared"]
    snap = snapshot(scene.world, family["libraries"])
    folder = keys_dir(tmp_path, mum=scene.key, dad=scene.other_key)
    result = run_job(env_for(scene, folder, EXT2INT_DELETE="force", EXT2INT_BATCH_SIZE="1", EXT2INT_CONCURRENCY="1",
                             EXT2INT_LIBRARY_IDS=",".join(family["libraries"][:2])))
    assert result.code == 0, result.stderr
    moved = sorted((o["path"], o["library_id"]) for o in result.outcomes("uploaded"))
    first = moved[0][0]
    assert [path for path, _ in moved] == [first, first], "one file, moved for both users, in a batch of one"
    assert {lib for _, lib in moved} == set(family["libraries"][:2])
    assert scene.world.removed_files[-1][0] == first and len(scene.world.removed_files) == 1
    check(scene.world, snap, delete_mode="force", require_done=False)

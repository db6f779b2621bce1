"""The eight ways the job lost data through relations, each tried on a real Immich 3.1.0 as a user would
build it: after the gate, nothing is lost, for any user, and each hold is named. (The same cases run on
the fake in tests/test_relations.py.)"""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import pytest

from tests import media
from tests.e2e.immich import World, finish, job, run, sha1_b64, upload
from tests.e2e.proxy import Proxy

pytestmark = pytest.mark.e2e


def seed() -> int:
    return random.randrange(1 << 48)


def internal_of(api, data: bytes) -> list[dict]:
    return [a for a in api.by_checksum(sha1_b64(data)) if a["libraryId"] is None and not a["isTrashed"]]


def held(report: dict) -> dict[str, str]:
    return {Path(o["path"]).name: o["reason"] for o in report["outcomes"] if o["kind"] == "held"}


def another_library(e2e, world: World, owner) -> dict:
    """A second external library over the same folder (created by the admin, as libraries are)."""
    body = {"ownerId": owner.me()["id"], "name": f"{world.folder.name}-also", "importPaths": [str(world.folder)]}
    library = e2e.admin.call("POST", "/libraries", json=body)
    e2e.admin.call("POST", f"/libraries/{library['id']}/scan")
    e2e.admin.wait_idle()
    return library


# --- 1. a shared folder -----------------------------------------------------------------------------------


def test_a_family_shared_folder_is_held_and_the_other_users_photo_keeps_its_file(e2e, tmp_path):
    admin, other = e2e.admin, e2e.other
    world = World.create(admin, admin, e2e.import_root, "family")
    world.write("beach.jpg", media.jpeg(seed()))
    world.scan(admin)
    theirs = another_library(e2e, world, other)
    their_asset, = other.search(libraryId=theirs["id"])
    other.call("PUT", "/assets", json={"ids": [their_asset["id"]], "isFavorite": True})

    report = run(e2e.url, admin.key, [world.library["id"]], tmp_path / "r.json", EXT2INT_DELETE="force")

    assert held(report) == {"beach.jpg": "shared_with_user"}
    assert "library" in report["outcomes"][0]["differences"][0]
    assert not admin.asset(world.id("beach.jpg"))["isTrashed"]
    admin.wait_idle()
    assert (world.folder / "beach.jpg").exists(), "the other user's photo keeps its file"
    mine_now = other.asset(their_asset["id"])
    assert mine_now["isFavorite"] and not mine_now["isTrashed"] and not mine_now["isOffline"]
    assert not internal_of(admin, world.files["beach.jpg"]), "nothing was uploaded for a held file"


def test_one_users_overlapping_libraries_move_together_and_the_file_goes_once(e2e, tmp_path):
    admin = e2e.admin
    world = World.create(admin, admin, e2e.import_root, "overlap")
    world.write("a.jpg", media.jpeg(seed()))
    world.scan(admin)
    also = another_library(e2e, world, admin)
    twin, = admin.search(libraryId=also["id"])
    admin.call("PUT", "/assets", json={"ids": [world.id("a.jpg")], "isFavorite": True})
    album = admin.call("POST", "/albums", json={"albumName": f"overlap {uuid.uuid4().hex[:6]}", "assetIds": [twin["id"]]})

    report = run(e2e.url, admin.key, [world.library["id"], also["id"]], tmp_path / "r.json", EXT2INT_DELETE="force")

    assert report["assetsMoved"] == 2 and report["counts"]["uploaded"] == 1, report["outcomes"]
    target, = internal_of(admin, world.files["a.jpg"])
    assert target["isFavorite"], "the first library's curation"
    assert album["id"] in [a["id"] for a in admin.get("/albums", params={"assetId": target["id"]})], "the second's"
    admin.wait_idle()
    assert not (world.folder / "a.jpg").exists(), "the file went, once both assets had moved"


# --- 2. a live photo's video from the phone ----------------------------------------------------------------


def test_a_phone_backups_live_video_is_linked_to_and_never_deleted(e2e, tmp_path):
    admin = e2e.admin
    cid = str(uuid.uuid4()).upper()
    phone_video = upload(admin, media.video(seed(), tmp_path / "IMG_1.MOV", content_id=cid).read_bytes(), "IMG_1.MOV",
                         "video/quicktime")
    admin.wait_idle()
    world = World.create(admin, admin, e2e.import_root, "exported")
    world.write("IMG_1.jpg", media.jpeg(seed(), content_id=cid))
    world.scan(admin)
    assert admin.asset(world.id("IMG_1.jpg"))["livePhotoVideoId"] == phone_video, "Immich linked them itself"

    report = run(e2e.url, admin.key, [world.library["id"]], tmp_path / "r.json", EXT2INT_DELETE="force")

    assert report["counts"]["uploaded"] == 1 and report["assetsMoved"] == 1, report["outcomes"]
    admin.wait_idle()
    video = admin.asset(phone_video)
    assert not video["isTrashed"], "the phone's video stays"
    still, = internal_of(admin, world.files["IMG_1.jpg"])
    assert admin.asset(still["id"])["livePhotoVideoId"] == phone_video


# --- 3. the same bytes at two paths; 8. an internal twin with its own values --------------------------------


def test_the_same_bytes_at_two_paths_curated_differently_keep_both_values(e2e, tmp_path):
    admin = e2e.admin
    world = World.create(admin, admin, e2e.import_root, "copies")
    data = media.jpeg(seed())
    world.write("a.jpg", data)
    world.write("copy/a.jpg", data)
    world.scan(admin)
    admin.call("PUT", "/assets", json={"ids": [world.id("a.jpg")], "description": "first caption", "rating": 5})
    admin.call("PUT", "/assets", json={"ids": [world.id("copy/a.jpg")], "description": "second caption", "rating": 2})
    admin.wait_idle()

    report = run(e2e.url, admin.key, [world.library["id"]], tmp_path / "r.json", EXT2INT_CONCURRENCY="1")

    assert report["counts"]["uploaded"] == 1 and list(held(report).values()) == ["conflict"], report["outcomes"]
    target, = internal_of(admin, data)
    kept = next(o for o in report["outcomes"] if o["kind"] == "held")
    descriptions = {admin.asset(target["id"])["exifInfo"]["description"], admin.asset(kept["asset_id"])["exifInfo"]["description"]}
    assert descriptions == {"first caption", "second caption"}, "both values still exist"


def test_an_internal_twin_keeps_its_own_values(e2e, tmp_path):
    admin = e2e.admin
    world = World.create(admin, admin, e2e.import_root, "twin")
    data = media.jpeg(seed())
    world.write("a.jpg", data)
    world.scan(admin)
    phone = upload(admin, data, "a.jpg")
    admin.call("PUT", "/assets", json={"ids": [phone], "description": "from the phone"})
    admin.call("PUT", "/assets", json={"ids": [world.id("a.jpg")], "description": "from the folder"})
    admin.wait_idle()

    report = run(e2e.url, admin.key, [world.library["id"]], tmp_path / "r.json", EXT2INT_DELETE="force")

    assert held(report) == {"a.jpg": "conflict"}
    assert admin.asset(phone)["exifInfo"]["description"] == "from the phone"
    assert not admin.asset(world.id("a.jpg"))["isTrashed"]


# --- 4. two runs at once -------------------------------------------------------------------------------------


def test_two_processes_on_one_library_never_act_on_one_asset(e2e, tmp_path):
    admin = e2e.admin
    world = World.create(admin, admin, e2e.import_root, "twice")
    base = seed()
    for group in range(2):
        for i in range(3):
            world.write(f"s{group}{i}.jpg", media.jpeg(base + group * 10 + i))
    for i in range(4):
        world.write(f"p{i}.jpg", media.jpeg(base + 100 + i))
    world.scan(admin)
    for group in range(2):
        admin.call("POST", "/stacks", json={"assetIds": [world.id(f"s{group}{i}.jpg") for i in range(3)]})
    reports = [tmp_path / "a.json", tmp_path / "b.json"]
    procs = [job(e2e.url, admin.key, [world.library["id"]], report=r, EXT2INT_CONCURRENCY="2") for r in reports]
    for proc in procs:
        code, _, err = finish(proc)
        assert code in (0, 1), err
    outcomes = [o for r in reports for o in json.loads(r.read_text())["outcomes"]]
    done = [o["asset_id"] for o in outcomes if o["kind"] in ("uploaded", "merged")]
    assert len(done) == len(set(done)), "no asset was moved by both"
    for attempt in range(4):  # what one run skipped as claimed by the other, a later run moves
        report = run(e2e.url, admin.key, [world.library["id"]], tmp_path / f"more{attempt}.json")
        if not report["outcomes"]:
            break
    stacks = set()
    for name, data in world.files.items():
        target, = internal_of(admin, data)
        assert admin.asset(world.id(name))["isTrashed"], f"{name} was moved"
        if name.startswith("s"):
            stacks.add(admin.asset(target["id"])["stack"]["id"])
    assert len(stacks) == 2, "both stacks survived, each whole"
    for stack_id in stacks:
        assert len(admin.get(f"/stacks/{stack_id}")["assets"]) == 3


# --- 5. the file rewritten after its bytes were proven ----------------------------------------------------------


def test_a_file_rewritten_after_an_earlier_run_proved_it_is_held(e2e, tmp_path):
    admin = e2e.admin
    world = World.create(admin, admin, e2e.import_root, "rewritten")
    world.write("a.jpg", media.jpeg(seed()))
    world.scan(admin)
    first = run(e2e.url, admin.key, [world.library["id"]], tmp_path / "keep.json", EXT2INT_DELETE="keep")
    assert first["counts"]["uploaded"] == 1, "copied, kept: the journal names the copy"
    new_version = media.jpeg(seed(), size=(320, 200))
    (world.folder / "a.jpg").write_bytes(new_version)  # an editor saves the file; Immich has not rescanned

    report = run(e2e.url, admin.key, [world.library["id"]], tmp_path / "r.json", EXT2INT_DELETE="force")

    assert held(report) == {"a.jpg": "file_changed"}, report["outcomes"]
    admin.wait_idle()
    assert (world.folder / "a.jpg").read_bytes() == new_version, "the new version is still on disk"
    assert internal_of(admin, world.files["a.jpg"]), "the old version is the internal copy"


# --- 6. an upload answered with another asset's id ----------------------------------------------------------------


def test_an_upload_answered_with_an_unrelated_assets_id_deletes_nothing(e2e, tmp_path):
    admin = e2e.admin
    unrelated = upload(admin, media.jpeg(seed()), "unrelated.jpg")
    world = World.create(admin, admin, e2e.import_root, "lying")
    world.write("a.jpg", media.jpeg(seed()))
    world.scan(admin)
    lie = json.dumps({"id": unrelated, "status": "created"}).encode()
    proxy = Proxy(e2e.url, lambda method, path, body: (201, lie) if (method, path) == ("POST", "/api/assets") else None)
    try:
        report = run(proxy.url, admin.key, [world.library["id"]], tmp_path / "r.json", EXT2INT_DELETE="force")
    finally:
        proxy.close()

    failed, = [o for o in report["outcomes"] if o["kind"] == "failed"]
    assert failed["stage"] == "prove" and unrelated in failed["reason"]
    assert not admin.asset(unrelated)["isTrashed"], "the unrelated asset is untouched"
    assert not admin.asset(world.id("a.jpg"))["isTrashed"]


# --- 7. curated while it moves ----------------------------------------------------------------------------------


def test_curation_added_while_the_asset_moves_is_carried_before_the_source_goes(e2e, tmp_path):
    admin = e2e.admin
    world = World.create(admin, admin, e2e.import_root, "curating")
    world.write("a.jpg", media.jpeg(seed()))
    world.scan(admin)
    source = world.id("a.jpg")

    def curate(method: str, path: str, body: bytes):
        if (method, path) == ("PUT", "/api/assets/copy"):
            admin.call("PUT", "/assets", json={"ids": [source], "description": "written during the move"})
        return None

    proxy = Proxy(e2e.url, curate)
    try:
        first = run(proxy.url, admin.key, [world.library["id"]], tmp_path / "r1.json")
    finally:
        proxy.close()
    waiting, = [o for o in first["outcomes"] if o["kind"] == "waiting"]
    assert "curated while it moved" in waiting["reason"] and not admin.asset(source)["isTrashed"]
    admin.wait_idle()
    second = run(e2e.url, admin.key, [world.library["id"]], tmp_path / "r2.json")
    assert second["counts"]["uploaded"] == 1, second["outcomes"]
    target, = internal_of(admin, world.files["a.jpg"])
    assert admin.asset(target["id"])["exifInfo"]["description"] == "written during the move"
    assert admin.asset(source)["isTrashed"]

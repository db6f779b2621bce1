"""Every file a delete removes, on a real Immich 3.1.0, built as photographers have it: a RAW+JPEG pair with
Lightroom's one `IMG_1.xmp`, a pair whose sidecar went missing, and one folder under two names through a
symbolic link, across two users. Nothing is lost: every value on every internal copy, no file deleted that
a live asset still uses, nothing failing for ever. (The same worlds run on the fake in tests/test_files.py.)"""

from __future__ import annotations

import json
import random
import subprocess
import uuid
from pathlib import Path

import pytest

from tests import media
from tests.e2e.immich import World, finish, job, run, sha1_b64

pytestmark = pytest.mark.e2e

XMP = media.xmp(description="Cliffs at dawn", rating=4, tags=("Trips/Ireland",), darktable="12 edits")


def seed() -> int:
    return random.randrange(1 << 48)


def copy_of(api, data: bytes) -> dict:
    found = [a for a in api.by_checksum(sha1_b64(data)) if a["libraryId"] is None and not a["isTrashed"]]
    assert len(found) == 1, f"{len(found)} live internal copies"
    return api.asset(found[0]["id"])


def counts(report: dict) -> dict[str, int]:
    return {kind: n for kind, n in report["counts"].items() if n}


def values(asset: dict) -> tuple:
    return asset["exifInfo"]["description"], asset["exifInfo"]["rating"], sorted(t["value"] for t in asset.get("tags", []))


def pair_world(e2e, tag: str) -> World:
    world = World.create(e2e.admin, e2e.admin, e2e.import_root, tag)
    (world.folder / "IMG_1.xmp").write_text(XMP)
    world.write("IMG_1.jpg", media.jpeg(seed()))
    world.write("IMG_1.tif", media.tiff(seed()))
    world.scan(e2e.admin)
    assert {n: values(e2e.admin.asset(world.id(n))) for n in ("IMG_1.jpg", "IMG_1.tif")} == {
        n: ("Cliffs at dawn", 4, ["Trips/Ireland"]) for n in ("IMG_1.jpg", "IMG_1.tif")}, "both read IMG_1.xmp"
    return world


@pytest.mark.parametrize("batch", ["100", "1"])
def test_a_raw_jpeg_pair_sharing_one_sidecar_moves_whole(e2e, tmp_path, batch):
    admin = e2e.admin
    world = pair_world(e2e, f"pair{batch}")
    admin.call("PUT", "/assets", json={"ids": [world.id("IMG_1.jpg")], "isFavorite": True})

    report = run(e2e.url, admin.key, [world.library["id"]], tmp_path / "r.json", EXT2INT_DELETE="force",
                 EXT2INT_BATCH_SIZE=batch)

    assert counts(report) == {"uploaded": 2}, report["outcomes"]
    admin.wait_idle()
    for name in ("IMG_1.jpg", "IMG_1.tif"):
        assert values(copy_of(admin, world.files[name])) == ("Cliffs at dawn", 4, ["Trips/Ireland"]), name
    assert copy_of(admin, world.files["IMG_1.jpg"])["isFavorite"]
    assert sorted(p.name for p in world.folder.iterdir()) == [], "the originals and their one sidecar went, once both moved"


def test_a_pair_with_a_sidecar_each_moves_each_with_its_own(e2e, tmp_path):
    admin = e2e.admin
    world = World.create(admin, admin, e2e.import_root, "each")
    (world.folder / "IMG_1.jpg.xmp").write_text(media.xmp(description="the jpeg's", rating=2))
    (world.folder / "IMG_1.tif.xmp").write_text(media.xmp(description="the tiff's", rating=5))
    world.write("IMG_1.jpg", media.jpeg(seed()))
    world.write("IMG_1.tif", media.tiff(seed()))
    world.scan(admin)

    report = run(e2e.url, admin.key, [world.library["id"]], tmp_path / "r.json", EXT2INT_DELETE="force")

    assert counts(report) == {"uploaded": 2}, report["outcomes"]
    admin.wait_idle()
    assert values(copy_of(admin, world.files["IMG_1.jpg"]))[:2] == ("the jpeg's", 2)
    assert values(copy_of(admin, world.files["IMG_1.tif"]))[:2] == ("the tiff's", 5)
    assert sorted(p.name for p in world.folder.iterdir()) == []


def test_an_apple_export_with_one_sidecar_moves_as_one_live_photo(e2e, tmp_path):
    admin = e2e.admin
    cid = str(uuid.uuid4()).upper()
    world = World.create(admin, admin, e2e.import_root, "export")
    (world.folder / "IMG_7.xmp").write_text(XMP)
    media.video(seed(), world.folder / "IMG_7.MOV", content_id=cid)
    world.files["IMG_7.MOV"] = (world.folder / "IMG_7.MOV").read_bytes()
    world.write("IMG_7.JPG", media.jpeg(seed(), content_id=cid))
    world.scan(admin)
    still = admin.asset(world.id("IMG_7.JPG"))
    assert still["livePhotoVideoId"] == world.id("IMG_7.MOV") and values(still) == ("Cliffs at dawn", 4, ["Trips/Ireland"])

    report = run(e2e.url, admin.key, [world.library["id"]], tmp_path / "r.json", EXT2INT_DELETE="force")

    assert report["assetsMoved"] == 2 and counts(report) == {"uploaded": 1}, report["outcomes"]
    admin.wait_idle()
    new_still = copy_of(admin, world.files["IMG_7.JPG"])
    assert values(new_still) == ("Cliffs at dawn", 4, ["Trips/Ireland"])
    assert new_still["livePhotoVideoId"] == copy_of(admin, world.files["IMG_7.MOV"])["id"]
    assert sorted(p.name for p in world.folder.iterdir()) == []


def test_a_pair_whose_sidecar_went_missing_moves_with_its_values_and_never_fails(e2e, tmp_path):
    admin = e2e.admin
    world = pair_world(e2e, "missing")
    album = admin.call("POST", "/albums", json={"albumName": f"missing {uuid.uuid4().hex[:6]}",
                                                "assetIds": [world.id("IMG_1.tif")]})
    (world.folder / "IMG_1.xmp").unlink()  # deleted by hand, or taken by an older version moving the other half

    report = run(e2e.url, admin.key, [world.library["id"]], tmp_path / "r.json")

    assert counts(report) == {"uploaded": 2}, report["outcomes"]
    notes = [n for o in report["outcomes"] for n in o["cannot_move"]]
    assert len(notes) == 2 and all("missing on disk" in n for n in notes)
    admin.wait_idle()
    for name in ("IMG_1.jpg", "IMG_1.tif"):
        assert values(copy_of(admin, world.files[name])) == ("Cliffs at dawn", 4, ["Trips/Ireland"]), name
    assert album["id"] in {a["id"] for a in admin.get("/albums", params={"assetId": copy_of(admin, world.files["IMG_1.tif"])["id"]})}
    again = run(e2e.url, admin.key, [world.library["id"]], tmp_path / "r2.json")
    assert not again["counts"].get("failed"), again["outcomes"]


def linked_world(e2e, owner) -> tuple[World, dict, Path]:
    """The admin's library over a folder, and `owner`'s library over a symbolic link to it."""
    admin = e2e.admin
    world = World.create(admin, admin, e2e.import_root, "mounted")
    world.write("a.jpg", media.jpeg(seed()))
    world.scan(admin)
    alias = e2e.import_root / f"linked-{uuid.uuid4().hex[:8]}"
    alias.symlink_to(world.folder)
    body = {"ownerId": owner.me()["id"], "name": alias.name, "importPaths": [str(alias)]}
    library = admin.call("POST", "/libraries", json=body)
    admin.call("POST", f"/libraries/{library['id']}/scan")
    admin.wait_idle()
    return world, library, alias


def test_another_users_library_over_a_symbolic_link_keeps_its_file(e2e, tmp_path):
    admin, other = e2e.admin, e2e.other
    world, theirs, alias = linked_world(e2e, other)
    their_asset, = other.search(libraryId=theirs["id"])
    assert their_asset["originalPath"] == str(alias / "a.jpg")
    other.call("PUT", "/assets", json={"ids": [their_asset["id"]], "isFavorite": True, "description": "hers"})

    # no alias declared: the job sees the folders (it runs beside Immich with the same paths) and knows
    report = run(e2e.url, admin.key, [world.library["id"]], tmp_path / "r.json", EXT2INT_DELETE="force")

    assert {Path(o["path"]).name: o["reason"] for o in report["outcomes"]} == {"a.jpg": "shared_with_user"}
    admin.wait_idle()
    assert (world.folder / "a.jpg").exists()
    hers = other.asset(their_asset["id"])
    assert hers["isFavorite"] and not hers["isOffline"] and hers["exifInfo"]["description"] == "hers"


def test_own_libraries_over_a_folder_and_its_link_move_together(e2e, tmp_path):
    admin = e2e.admin
    world, linked, alias = linked_world(e2e, admin)
    twin, = admin.search(libraryId=linked["id"])
    admin.call("PUT", "/assets", json={"ids": [twin["id"]], "description": "curated through the link"})
    admin.call("PUT", "/assets", json={"ids": [world.id("a.jpg")], "isFavorite": True})
    admin.wait_idle()

    alone = run(e2e.url, admin.key, [world.library["id"]], tmp_path / "alone.json", EXT2INT_DELETE="force")
    assert {Path(o["path"]).name: o["reason"] for o in alone["outcomes"]} == {"a.jpg": "shared_unselected"}

    both = run(e2e.url, admin.key, [world.library["id"], linked["id"]], tmp_path / "both.json", EXT2INT_DELETE="force")
    assert both["assetsMoved"] == 2 and counts(both) == {"uploaded": 1}, both["outcomes"]
    admin.wait_idle()
    copy = copy_of(admin, world.files["a.jpg"])
    assert copy["isFavorite"] and copy["exifInfo"]["description"] == "curated through the link"
    assert not (world.folder / "a.jpg").exists()


def test_another_users_library_over_a_second_mount_keeps_its_file(e2e, tmp_path):
    """The family's share mounted twice on the server (a bind mount: one folder, two paths). The job that
    sees both mounts knows by itself; one that does not (its container lacks the second mount) knows
    once the alias is declared."""
    admin, other = e2e.admin, e2e.other
    world = World.create(admin, admin, e2e.import_root, "share")
    world.write("a.jpg", media.jpeg(seed()))
    world.scan(admin)
    second = e2e.import_root / f"share-again-{uuid.uuid4().hex[:8]}"
    second.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(world.folder), str(second)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"this machine does not allow a bind mount: {mounted.stderr.strip()}")
    try:
        body = {"ownerId": other.me()["id"], "name": second.name, "importPaths": [str(second)]}
        theirs = admin.call("POST", "/libraries", json=body)
        admin.call("POST", f"/libraries/{theirs['id']}/scan")
        admin.wait_idle()
        their_asset, = other.search(libraryId=theirs["id"])
        other.call("PUT", "/assets", json={"ids": [their_asset["id"]], "isFavorite": True})

        seen = run(e2e.url, admin.key, [world.library["id"]], tmp_path / "seen.json", EXT2INT_DELETE="force")
        # a job without the second mount: its own mount namespace, where that mount is gone
        blind = ("unshare", "-m", "--propagation", "private", "sh", "-c", f"umount '{second}' && exec \"$@\"", "sh")
        unaware = finish(job(e2e.url, admin.key, [world.library["id"]], "plan", tmp_path / "plan.json", wrap=blind))
        assert unaware[0] == 0, unaware[2]
        assert "move" in json.loads((tmp_path / "plan.json").read_text())["outcomes"][0]["plan"], \
            "without the mount and the alias the job cannot know (what the alias is for)"
        told = run(e2e.url, admin.key, [world.library["id"]], tmp_path / "told.json", wrap=blind,
                   EXT2INT_DELETE="force", EXT2INT_PATH_ALIASES=f"{world.folder}={second}")

        for report in (seen, told):
            assert {Path(o["path"]).name: o["reason"] for o in report["outcomes"]} == {"a.jpg": "shared_with_user"}
        admin.wait_idle()
        assert (world.folder / "a.jpg").exists()
        hers = other.asset(their_asset["id"])
        assert hers["isFavorite"] and not hers["isOffline"] and not hers["isTrashed"]
    finally:
        subprocess.run(["umount", str(second)], check=False)

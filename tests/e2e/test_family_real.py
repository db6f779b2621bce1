"""A family server on a real Immich 3.1.0: one job with both users' keys (IMMICH_API_KEYS_DIR) migrates a
shared folder that each user mounted as their own library, and a private library each, curated by each
(albums, favourites, people, edits, a live photo Immich linked itself): everything moves, each user's
curation stays theirs, and each shared file is deleted once, after both users' copies were verified.
With one key missing, the shared files are held, nothing is lost, and the report says whose key would
finish them."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import pytest

from tests import media
from tests.e2e.immich import World, finish, job, sha1_b64
from tests.e2e.records import Contents, curated, missing

pytestmark = pytest.mark.e2e


def keys_dir(tmp_path: Path, **keys: str) -> Path:
    folder = tmp_path / "keys"
    folder.mkdir()
    for name, key in keys.items():
        (folder / name).write_text(key)
    return folder


def internal_of(api, data: bytes) -> list[dict]:
    return [a for a in api.by_checksum(sha1_b64(data)) if a["libraryId"] is None and not a["isTrashed"]]


def build_family(e2e, tmp_path: Path) -> dict:
    admin, other = e2e.admin, e2e.other
    mum = World.create(admin, admin, e2e.import_root, "family")  # the shared folder, Mum's library over it
    seed = random.randrange(1 << 48)
    mum.write("beach.jpg", media.jpeg(seed))
    mum.write("cake.jpg", media.jpeg(seed + 1))
    cid = str(uuid.uuid4()).upper()
    mum.write("live/IMG_1.jpg", media.jpeg(seed + 2, content_id=cid))
    mum.write("live/IMG_1.mov", media.video(seed + 3, tmp_path / "IMG_1.mov", content_id=cid).read_bytes())
    mum.scan(admin)
    dad = World(other, mum.folder, files=dict(mum.files))  # Dad's library over the same folder
    dad.library = admin.call("POST", "/libraries", json={"ownerId": other.me()["id"], "name": f"{mum.folder.name}-dad",
                                                         "importPaths": [str(mum.folder)]})
    dad.scan(admin)
    assert sorted(dad.assets) == sorted(mum.assets) == sorted(mum.files)
    assert dad.assets["live/IMG_1.jpg"]["livePhotoVideoId"] == dad.id("live/IMG_1.mov"), "Immich linked Dad's too"
    # each curates their own copy
    admin.call("PUT", "/assets", json={"ids": [mum.id("beach.jpg")], "isFavorite": True, "description": "Mum's"})
    admin.call("POST", "/albums", json={"albumName": f"Holidays {uuid.uuid4().hex[:6]}", "assetIds": [mum.id("beach.jpg")]})
    other.call("PUT", "/assets", json={"ids": [dad.id("cake.jpg")], "rating": 5})
    other.call("POST", "/albums", json={"albumName": f"Dad's best {uuid.uuid4().hex[:6]}", "assetIds": [dad.id("beach.jpg")]})
    person = other.call("POST", "/people", json={"name": f"Lea {uuid.uuid4().hex[:6]}"})
    other.call("POST", "/faces", json={"assetId": dad.id("beach.jpg"), "personId": person["id"], "x": 100, "y": 80,
                                        "width": 120, "height": 140, "imageWidth": 640, "imageHeight": 480})
    other.call("PUT", f"/assets/{dad.id('cake.jpg')}/edits", json={"edits": [
        {"action": "crop", "parameters": {"x": 10, "y": 20, "width": 300, "height": 200}}]})
    # a private library each
    mine = World.create(admin, admin, e2e.import_root, "mum-only")
    mine.write("mum.jpg", media.jpeg(seed + 4))
    mine.scan(admin)
    his = World.create(admin, other, e2e.import_root, "dad-only")
    his.write("dad.jpg", media.jpeg(seed + 5))
    his.scan(admin)
    admin.wait_idle()
    for world in (mum, dad, mine, his):
        world.refresh()
    return {"mum": mum, "dad": dad, "mine": mine, "his": his}


def state(e2e, family: dict) -> dict:
    """Every asset's curation, per user and file, read through that user's key."""
    out = {}
    for name in ("mum", "dad", "mine", "his"):
        world = family[name]
        contents = Contents(world.api, {str(world.folder / f): sha1_b64(d) for f, d in world.files.items()})
        out[name] = {f: curated(world.api, a["id"], contents) for f, a in world.assets.items()}
    return out


def test_one_job_with_every_key_migrates_the_family_server(e2e, tmp_path):
    family = build_family(e2e, tmp_path)
    before = state(e2e, family)
    libraries = [family[n].library["id"] for n in ("mum", "dad", "mine", "his")]
    folder = keys_dir(tmp_path, mum=e2e.admin.key, dad=e2e.other.key)
    # the plan first: changes nothing, and names the other user's copy that moves with each shared file
    code, out, err = finish(job(e2e.url, "", libraries, "plan", report=tmp_path / "plan.json",
                                IMMICH_API_KEY="", IMMICH_API_KEYS_DIR=str(folder)))
    assert code == 0, err
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["requests"]["mutating"] == 0 and plan["counts"]["planned"] == 8
    assert any("asset of the same file" in o["plan"] for o in plan["outcomes"])

    code, out, err = finish(job(e2e.url, "", libraries, report=tmp_path / "run.json", EXT2INT_DELETE="force",
                                IMMICH_API_KEY="", IMMICH_API_KEYS_DIR=str(folder)))
    report = json.loads((tmp_path / "run.json").read_text())
    assert code == 0, err
    assert report["counts"]["uploaded"] == 8 and report["assetsMoved"] == 10, report["counts"]
    assert e2e.admin.key not in out + err and e2e.other.key not in out + err
    e2e.admin.wait_idle()

    for name, api in (("mum", e2e.admin), ("dad", e2e.other), ("mine", e2e.admin), ("his", e2e.other)):
        world = family[name]
        for file_name, data in world.files.items():
            twins = internal_of(api, data)
            assert len(twins) == 1, f"{name}/{file_name}: {len(twins)} internal copies for its owner"
            contents = Contents(api, {})
            after = curated(api, twins[0]["id"], contents)
            assert not missing(before[name][file_name], after), f"{name}/{file_name}: {missing(before[name][file_name], after)}"
    # each user's curation is theirs alone
    mum_beach = internal_of(e2e.admin, family["mum"].files["beach.jpg"])[0]
    dad_beach = internal_of(e2e.other, family["mum"].files["beach.jpg"])[0]
    assert mum_beach["isFavorite"] and not dad_beach["isFavorite"]
    assert e2e.other.get("/faces", params={"id": dad_beach["id"]}), "Dad's person on Dad's copy"
    dad_live = internal_of(e2e.other, family["mum"].files["live/IMG_1.jpg"])[0]
    assert e2e.other.asset(dad_live["livePhotoVideoId"])["ownerId"] == e2e.other.me()["id"]
    # the shared files went, once
    for file_name in family["mum"].files:
        assert not (family["mum"].folder / file_name).exists(), f"{file_name} left the disk after both moved"


def test_a_missing_key_holds_the_shared_files_and_names_whose_key_would_finish_them(e2e, tmp_path):
    family = build_family(e2e, tmp_path)
    libraries = [family[n].library["id"] for n in ("mum", "mine")]
    code, out, err = finish(job(e2e.url, e2e.admin.key, libraries, report=tmp_path / "run.json", EXT2INT_DELETE="force"))
    report = json.loads((tmp_path / "run.json").read_text())
    assert code == 0, err
    held = {Path(o["path"]).name: o for o in report["outcomes"] if o["kind"] == "held"}
    assert set(held) == {"beach.jpg", "cake.jpg", "IMG_1.jpg"}
    assert all(o["reason"] == "shared_with_user" and "API key too" in o["differences"][0] for o in held.values())
    assert report["counts"]["uploaded"] == 1, "Mum's private photo moved"
    e2e.admin.wait_idle()
    for file_name in family["mum"].files:
        assert (family["mum"].folder / file_name).exists(), f"{file_name}: Dad's photo keeps its file"
        dad_asset = e2e.other.asset(family["dad"].id(file_name))
        assert not dad_asset["isTrashed"] and not dad_asset["isOffline"]

"""The trash watch on a real Immich 3.1.0, with the default settings: what changes a source at the moment
of its delete survives the trash's purge. The instant itself cannot be hit on a real server from outside,
so each test makes the same change just after it, on the trashed source, where that instant's change
lands (Immich accepts edits of a trashed asset, and its file is the user's, on disk). The fake's seam
hits the instant itself (tests/test_trash_watch.py)."""

from __future__ import annotations

import random
import time

import pytest

from tests import media
from tests.e2e.immich import World, run, sha1_b64

pytestmark = pytest.mark.e2e


def trashed_since(api, library_id: str, seconds: float) -> list[dict]:
    after = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds))
    return api.search(libraryId=library_id, trashedAfter=after, withExif=True)


def journal(api, asset_id: str) -> dict:
    return next((m["value"] for m in api.get(f"/assets/{asset_id}/metadata") if m["key"] == "immich-ext2int"), {})


def purge(api, library_id: str) -> None:
    """Immich's purge of this library's trash, now rather than after the trash days (the same deletion,
    files included; the rest of the server's trash stays)."""
    ids = [a["id"] for a in trashed_since(api, library_id, 86400)]
    if ids:
        api.call("DELETE", "/assets", json={"ids": ids, "force": True})
    api.wait_idle()


def copy_of(api, data: bytes) -> dict:
    found = [a for a in api.by_checksum(sha1_b64(data)) if a["libraryId"] is None and not a["isTrashed"]]
    assert len(found) == 1, f"{len(found)} live internal copies"
    return api.asset(found[0]["id"])


def test_curation_made_as_the_source_was_trashed_reaches_the_copy_before_the_purge(e2e, tmp_path):
    admin = e2e.admin
    world = World.create(admin, admin, e2e.import_root, "watch-curated")
    data = media.jpeg(random.randrange(1 << 48))
    world.write("a.jpg", data)
    world.scan(admin)
    source = world.id("a.jpg")
    admin.call("PUT", "/assets", json={"ids": [source], "description": "Cliffs", "rating": 3})
    admin.wait_idle()

    first = run(e2e.url, admin.key, [world.library["id"]], tmp_path / "1.json")
    assert first["counts"]["uploaded"] == 1, first
    assert admin.get("/server/config")["trashDays"] == 30
    assert [a["id"] for a in trashed_since(admin, world.library["id"], 3600)] == [source], "listed by trash time"
    assert journal(admin, source)["state"] == "trashed"
    # what the web UI open on that photo saves as the delete lands: on the trashed source
    album = admin.call("POST", "/albums", json={"albumName": "watch", "assetIds": []})
    admin.call("PUT", "/assets", json={"ids": [source], "description": "Cliffs at dawn", "rating": 5})
    admin.call("PUT", f"/albums/{album['id']}/assets", json={"ids": [source]})
    admin.wait_idle()
    assert admin.asset(source)["isTrashed"] and admin.asset(source)["exifInfo"]["description"] == "Cliffs at dawn"

    second = run(e2e.url, admin.key, [world.library["id"]], tmp_path / "2.json")

    assert second["trashWatch"]["restored"] == 1, second["notes"]
    copy = copy_of(admin, data)
    assert (copy["exifInfo"]["description"], copy["exifInfo"]["rating"]) == ("Cliffs at dawn", 5), second
    assert album["id"] in {a["id"] for a in admin.get("/albums", params={"assetId": copy["id"]})}
    assert admin.asset(source)["isTrashed"], "moved again and trashed again"

    third = run(e2e.url, admin.key, [world.library["id"]], tmp_path / "3.json")
    assert third["trashWatch"]["proven"] == 1 and third["trashWatch"]["restored"] == 0, third["notes"]
    purge(admin, world.library["id"])
    copy = copy_of(admin, data)
    assert (copy["exifInfo"]["description"], copy["exifInfo"]["rating"]) == ("Cliffs at dawn", 5)


def test_a_file_replaced_as_the_source_was_trashed_survives_the_purge(e2e, tmp_path):
    admin = e2e.admin
    world = World.create(admin, admin, e2e.import_root, "watch-file")
    old, new = media.jpeg(random.randrange(1 << 48)), media.jpeg(random.randrange(1 << 48))
    world.write("a.jpg", old)
    world.scan(admin)
    source = world.id("a.jpg")

    first = run(e2e.url, admin.key, [world.library["id"]], tmp_path / "1.json")
    assert first["counts"]["uploaded"] == 1, (first["counts"], first["notes"], first["outcomes"])
    time.sleep(1.1)  # a new modification time, as a sync tool's rename gives
    (world.folder / "a.jpg").write_bytes(new)

    second = run(e2e.url, admin.key, [world.library["id"]], tmp_path / "2.json")

    assert second["trashWatch"]["restored"] == 1 and any("file changed" in n for n in second["notes"]), second
    assert not admin.asset(source)["isTrashed"], "back from the trash"
    assert {o["path"]: o["reason"] for o in second["outcomes"] if o["kind"] == "held"} == {
        str(world.folder / "a.jpg"): "file_changed"}
    purge(admin, world.library["id"])
    assert (world.folder / "a.jpg").read_bytes() == new, "the purge could not take the new bytes"

    world.scan(admin)  # Immich reads the new version
    third = run(e2e.url, admin.key, [world.library["id"]], tmp_path / "3.json")
    assert third["counts"]["uploaded"] == 1, third
    copy_of(admin, old)
    copy_of(admin, new)

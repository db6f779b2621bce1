"""The job against a real Immich 3.1.0: a curated external library moved in small batches, one run
killed with SIGKILL mid-way, then every byte and every curated field checked through the API."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import media
from tests.conftest import ROOT
from tests.e2e.immich import World, sha1_b64
from tests.e2e.records import Contents, curated, missing
from tests.prometheus import Pushgateway


@pytest.fixture
def gateway(tmp_path):
    """A real Pushgateway (Debian's), as a CronJob would push to."""
    server = Pushgateway(tmp_path)
    yield server
    server.stop()


def job(e2e, world: World, command: str = "run", key: str | None = None, report: Path | None = None, **env) -> subprocess.Popen:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("IMMICH_", "EXT2INT_"))}
    full.update({"IMMICH_URL": e2e.url, "IMMICH_API_KEY": key or world.api.key, "EXT2INT_LIBRARY_IDS": world.library["id"],
                 "EXT2INT_LOG_FORMAT": "json", "PYTHONPATH": str(ROOT), **env})
    if report:
        full["EXT2INT_REPORT"] = str(report)
    return subprocess.Popen([sys.executable, "-m", "job", command], env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def build_curated_world(e2e, tmp_path: Path) -> tuple[World, dict]:
    """Real media files, scanned by Immich, then curated through the API like a user would."""
    admin = e2e.admin
    world = World.create(admin, admin, e2e.import_root, "curated")
    seed = random.randrange(1 << 48)
    tag = world.folder.name
    world.write("p01.jpg", media.jpeg(seed + 1, taken=datetime(2019, 5, 1, 10), gps=(53.3, -6.2)))
    world.write("p02.jpg", media.jpeg(seed + 2, taken=datetime(2015, 8, 9, 9), gps=(40.0, 3.0)))
    world.write("p03.jpg", media.jpeg(seed + 3))
    world.write("p04.jpg", media.jpeg(seed + 4))
    world.write("q01.png", media.png(seed + 5))
    world.write("v01.mp4", media.video(seed + 6, tmp_path / "v01.mp4").read_bytes())
    cid = str(uuid.uuid4()).upper()  # Apple's ContentIdentifier: Immich links the two halves itself
    world.write("live/l01.jpg", media.jpeg(seed + 7, content_id=cid))
    world.write("live/l01.mov", media.video(seed + 8, tmp_path / "l01.mov", content_id=cid).read_bytes())
    world.write("f01.jpg", media.jpeg(seed + 9))
    world.write("p07.jpg", media.jpeg(seed + 10))
    world.write("p08.jpg", media.jpeg(seed + 11))
    world.scan(admin)
    assert sorted(world.assets) == sorted(world.files), "Immich imported every file"
    assert world.assets["live/l01.jpg"]["livePhotoVideoId"] == world.id("live/l01.mov"), "linked by Immich"
    a = world.id

    admin.call("PUT", "/assets", json={"ids": [a("p01.jpg")], "isFavorite": True, "description": "Cliffs at dawn", "rating": 4})
    # Immich writes those values into the sidecar and reads the asset again, replacing its tags with the
    # file's: tags given before that re-read ends are lost from the database (seen under load)
    admin.wait_idle()
    tags = admin.call("PUT", "/tags", json={"tags": [f"{tag}/Trips/Ireland", f"{tag}-Family"]})
    admin.call("PUT", "/tags/assets", json={"tagIds": [t["id"] for t in tags], "assetIds": [a("p01.jpg")]})
    admin.call("PUT", "/assets", json={"ids": [a("p02.jpg")], "visibility": "archive",
                                       "dateTimeOriginal": "2015-08-09T18:30:00+02:00", "timeZone": "Europe/Paris",
                                       "latitude": 48.8584, "longitude": 2.2945})
    admin.call("POST", "/stacks", json={"assetIds": [a("p03.jpg"), a("p04.jpg")]})
    admin.call("PUT", "/assets", json={"ids": [a("q01.png")], "isFavorite": True, "description": "a png"})
    album_a = admin.call("POST", "/albums", json={"albumName": f"A {tag}", "assetIds": [a("p01.jpg"), a("p03.jpg"), a("q01.png")]})
    admin.call("PATCH", f"/albums/{album_a['id']}", json={"albumThumbnailAssetId": a("p01.jpg")})
    album_b = admin.call("POST", "/albums", json={"albumName": f"B {tag}", "assetIds": [a("v01.mp4"), a("f01.jpg"), a("live/l01.jpg")]})
    admin.call("PATCH", f"/albums/{album_b['id']}", json={"albumThumbnailAssetId": a("f01.jpg")})
    person = admin.call("POST", "/people", json={"name": f"Alice {tag}"})
    admin.call("POST", "/faces", json={"assetId": a("f01.jpg"), "personId": person["id"], "x": 100, "y": 80,
                                        "width": 120, "height": 140, "imageWidth": 640, "imageHeight": 480})
    admin.call("PUT", f"/assets/{a('f01.jpg')}/edits", json={"edits": [
        {"action": "crop", "parameters": {"x": 10, "y": 20, "width": 300, "height": 200}}]})
    admin.call("PUT", f"/assets/{a('f01.jpg')}/metadata", json={"items": [{"key": "note", "value": {"text": "keep me"}}]})

    # Internal twins: p07 already internal (a phone backup), p08's twin in the trash.
    for name, trashed in (("p07.jpg", False), ("p08.jpg", True)):
        response = admin.session.post(admin.url + "/assets", files={"assetData": (name, world.files[name], "image/jpeg")},
                                      data={"fileCreatedAt": "2019-05-01T09:00:00.000Z", "fileModifiedAt": "2019-01-01T00:00:00.000Z"})
        assert response.status_code == 201, response.text
        if trashed:
            admin.call("DELETE", "/assets", json={"ids": [response.json()["id"]], "force": False})
    admin.wait_idle()
    world.refresh()
    assert len(admin.asset(a("p01.jpg"))["tags"]) == 2, "Immich kept p01's tags (the world is as built)"
    return world, {"albums": [album_a["id"], album_b["id"]], "person": person["id"]}


def other_users_world(e2e) -> tuple[World, dict]:
    world = World.create(e2e.admin, e2e.other, e2e.import_root, "other")
    world.write("o01.jpg", media.jpeg(random.randrange(1 << 48)))
    world.scan(e2e.admin)
    e2e.other.call("PUT", "/assets", json={"ids": [world.id("o01.jpg")], "isFavorite": True})
    e2e.admin.wait_idle()
    return world, {a["id"]: e2e.other.asset(a["id"]) for a in e2e.other.search(withExif=True)}


@pytest.mark.e2e
def test_a_curated_library_moves_completely_on_a_real_immich(e2e, tmp_path, gateway):
    admin = e2e.admin
    world, extra = build_curated_world(e2e, tmp_path)
    theirs, their_assets = other_users_world(e2e)
    disk = {str(world.folder / name): sha1_b64(data) for name, data in world.files.items()}
    contents = Contents(admin, disk)
    before = {name: curated(admin, asset["id"], contents) for name, asset in world.assets.items()}
    sources = {name: asset["id"] for name, asset in world.assets.items()}
    assert before["f01.jpg"]["faces"] and before["f01.jpg"]["edits"] and before["live/l01.jpg"]["live"]
    assert before["p03.jpg"]["stack"]["primary"] and before["p02.jpg"]["visibility"] == "archive"

    # plan: no mutating request, and its count is what the runs will do
    code, out, err = finish(job(e2e, world, "plan", report=tmp_path / "plan.json"))
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert code == 0, err
    assert plan["requests"]["mutating"] == 0 and plan["requests"]["total"] > 0
    assert plan["counts"]["planned"] == 10 and sum(o["assets"] for o in plan["outcomes"]) == 11

    # a run killed with SIGKILL once it has started moving; the claims of its units in flight expire
    # after EXT2INT_CLAIM_TTL (30 s here, 2 min by default): until then later runs skip those units
    ttl = {"EXT2INT_CLAIM_TTL": "30s"}
    proc = job(e2e, world, EXT2INT_BATCH_SIZE="4", EXT2INT_CONCURRENCY="2", **ttl)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if any(a["isTrashed"] for a in admin.search(libraryId=world.library["id"], withDeleted=True)):
            break  # the first external asset is done: kill in the middle of the rest
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    # small batches until nothing is left; each run's report and pushed metrics agree with the server
    moved = 0
    total = {"uploaded": 0, "merged": 0, "failed": 0}
    for run in range(30):
        report_path = tmp_path / f"run{run}.json"
        code, out, err = finish(job(e2e, world, report=report_path, EXT2INT_BATCH_SIZE="3",
                                    EXT2INT_PUSHGATEWAY_URL=gateway.url, **ttl))
        assert code == 0, err
        report = json.loads(report_path.read_text())
        pushed: dict[tuple[str, str], float] = {}
        for family in text_string_to_metric_families(gateway.group_text()):
            for s in family.samples:
                if s.labels.get("job") == "immich-ext2int" and s.labels.get("library") in (world.library["id"], None):
                    key = (s.name, s.labels.get("outcome", ""))
                    pushed[key] = pushed.get(key, 0.0) + s.value
        for outcome in ("uploaded", "merged", "failed"):
            assert pushed[("ext2int_last_run_assets", outcome)] == \
                sum(o["assets"] for o in report["outcomes"] if o["kind"] == outcome)
            total[outcome] += sum(o["assets"] for o in report["outcomes"] if o["kind"] == outcome)
            assert pushed[("ext2int_assets_total", outcome)] == total[outcome], "the gateway holds the totals of every run"
        assert pushed[("ext2int_remaining_assets", "")] == report["remaining"][world.library["id"]]
        for outcome in report["outcomes"]:
            if outcome["kind"] in ("uploaded", "merged"):
                assert admin.asset(outcome["asset_id"])["isTrashed"]
                assert admin.asset(outcome["target_id"])["libraryId"] is None
        moved += sum(o["assets"] for o in report["outcomes"] if o["kind"] in ("uploaded", "merged"))
        if report["remaining"][world.library["id"]] == 0 and not report["outcomes"]:
            break
    else:
        raise AssertionError("the migration did not finish in 30 runs")

    # every file's bytes exactly once as an internal asset of the owner, not trashed, with its curation
    for name, data in world.files.items():
        twins = [a for a in admin.by_checksum(sha1_b64(data)) if a["libraryId"] is None]
        assert len(twins) == 1, f"{name}: {len(twins)} internal assets hold its bytes"
        assert not twins[0]["isTrashed"], f"{name}: its only copy is in the trash"
        after = curated(admin, twins[0]["id"], contents)
        assert not missing(before[name], after), f"{name}: {missing(before[name], after)}"
        assert admin.asset(sources[name])["isTrashed"], f"{name}: the external asset is still live"
        provenance = {m["key"]: m["value"] for m in admin.get(f"/assets/{twins[0]['id']}/metadata")}["immich-ext2int"]
        assert any(s["path"] == str(world.folder / name) for s in provenance["sources"])

    # nothing of the other user changed
    for asset_id, asset in their_assets.items():
        now = e2e.other.asset(asset_id)
        for field in ("checksum", "isFavorite", "isTrashed", "visibility", "libraryId"):
            assert now[field] == asset[field]

    # a further run changes nothing
    code, out, err = finish(job(e2e, world, report=tmp_path / "again.json"))
    again = json.loads((tmp_path / "again.json").read_text())
    assert code == 0 and again["requests"]["mutating"] == 0 and not again["outcomes"]


@pytest.mark.e2e
def test_force_deletes_the_files_and_a_rescan_brings_nothing_back(e2e, tmp_path):
    admin = e2e.admin
    world = World.create(admin, admin, e2e.import_root, "force")
    world.write("a.jpg", media.jpeg(random.randrange(1 << 48)))
    world.write("b.png", media.png(random.randrange(1 << 48)))
    world.scan(admin)
    code, out, err = finish(job(e2e, world, report=tmp_path / "r.json", EXT2INT_DELETE="force"))
    assert code == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["counts"]["uploaded"] == 2
    admin.wait_idle()
    assert not any((world.folder / name).exists() for name in world.files), "Immich deletes the originals"
    world.scan(admin)
    assert world.assets == {}, "a rescan imports nothing"
    for data in world.files.values():
        assert [a for a in admin.by_checksum(sha1_b64(data)) if a["libraryId"] is None and not a["isTrashed"]]


@pytest.mark.e2e
def test_a_key_without_delete_permission_stops_and_deletes_nothing(e2e, tmp_path):
    admin = e2e.admin
    world = World.create(admin, admin, e2e.import_root, "perm")
    world.write("a.jpg", media.jpeg(random.randrange(1 << 48)))
    world.scan(admin)
    everything = [p for p in ("user.read asset.read asset.download asset.upload asset.update asset.copy album.read "
                              "album.update tag.asset stack.read stack.update face.read face.create person.read "
                              "person.create person.update sharedLink.read asset.edit.get asset.edit.create "
                              "library.read").split()]
    key = admin.call("POST", "/api-keys", json={"name": "ext2int-e2e-no-delete", "permissions": everything})
    try:
        code, out, err = finish(job(e2e, world, key=key["secret"]))
        assert code == 1
        assert "asset.delete" in err and key["secret"] not in out + err
        assert not admin.asset(world.id("a.jpg"))["isTrashed"]
        assert not [a for a in admin.by_checksum(sha1_b64(world.files["a.jpg"])) if a["libraryId"] is None]
    finally:
        admin.call("DELETE", f"/api-keys/{key['apiKey']['id']}")


@pytest.mark.e2e
def test_another_users_library_is_refused(e2e, tmp_path):
    theirs = World.create(e2e.admin, e2e.other, e2e.import_root, "refuse")
    theirs.write("o.jpg", media.jpeg(random.randrange(1 << 48)))
    theirs.scan(e2e.admin)
    code, out, err = finish(job(e2e, theirs, key=e2e.admin.key))
    assert code == 2 and "whose API key this run does not have" in err
    assert not e2e.other.asset(theirs.id("o.jpg"))["isTrashed"]

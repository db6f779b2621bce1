"""The fake is our model of Immich; a real Immich is the truth. One scenario, through the HTTP API
only, runs against both; every answer the job relies on (status codes, field sets, dedup, trash, the
copy endpoint's stack behaviour, error bodies) must be observed the same on both."""

from __future__ import annotations

import base64
import hashlib
import random
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests import media
from tests.e2e.immich import Api, sha1_b64
from tests.fake_immich import FakeImmich, Scene

ASSET_FIELDS_THE_JOB_READS = {
    "id", "ownerId", "libraryId", "type", "originalPath", "originalFileName", "originalMimeType", "fileCreatedAt",
    "fileModifiedAt", "localDateTime", "createdAt", "updatedAt", "isFavorite", "isTrashed", "isOffline", "visibility",
    "duration", "exifInfo", "livePhotoVideoId", "tags", "people", "checksum", "stack", "isEdited", "width", "height",
}


def upload(api: Api, data: bytes, name: str, headers: dict | None = None) -> tuple[int, dict]:
    response = api.session.post(api.url + "/assets", headers=headers or {},
                                files={"assetData": (name, data, "image/jpeg")},
                                data={"fileCreatedAt": "2019-05-01T09:00:00.000Z", "fileModifiedAt": "2019-01-01T00:00:00.000Z",
                                      "deviceAssetId": name, "deviceId": "contract"})
    return response.status_code, response.json()


def status_and_body(api: Api, method: str, path: str, **kwargs) -> tuple[int, object]:
    response = api.session.request(method, api.url + path, timeout=30, **kwargs)
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, None


def wait_for(api: Api, condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError("condition not reached")


def observe(api: Api, import_root: Path, seed: int) -> list[tuple[str, object]]:
    """Run the scenario; return what was seen, normalised so that two faithful servers agree."""
    seen: list[tuple[str, object]] = []
    me = api.me()
    seen.append(("users/me fields", {"id", "email", "name", "isAdmin"} <= set(me)))
    seen.append(("server/version fields", sorted(api.get("/server/version"))))

    folder = import_root / f"contract-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    files = {name: media.jpeg(seed + i) for i, name in enumerate(("a.jpg", "b.jpg", "c.jpg"))}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    library = api.call("POST", "/libraries", json={"ownerId": me["id"], "name": folder.name, "importPaths": [str(folder)]})
    seen.append(("library fields", {"id", "ownerId", "importPaths"} <= set(library)))
    api.call("POST", f"/libraries/{library['id']}/scan")
    wait_for(api, lambda: len(api.search(libraryId=library["id"])) == 3)
    # Immich's scan is still at work once the three show (seen on 3.1.0: one of them briefly gone from the
    # search, a page of 2 with no next one): what follows looks at a library Immich is done with
    wait_idle(api)
    wait_for(api, lambda: len(api.search(libraryId=library["id"])) == 3)
    page = api.call("POST", "/search/metadata", json={"libraryId": library["id"], "size": 2, "page": 1, "withExif": True})
    seen.append(("search page shape", (sorted(page), sorted(page["assets"]), page["assets"]["nextPage"], len(page["assets"]["items"]))))
    listed = {a["originalFileName"]: a for a in api.search(libraryId=library["id"], withExif=True)}
    seen.append(("external checksum is of the path", all(
        a["checksum"] == base64.b64encode(hashlib.sha1(("path:" + a["originalPath"]).encode()).digest()).decode()
        for a in listed.values())))
    seen.append(("search items lack tags and stack", all("tags" not in a and "stack" not in a for a in listed.values())))
    a_ext = api.asset(listed["a.jpg"]["id"])
    seen.append(("asset has the fields the job reads", sorted(ASSET_FIELDS_THE_JOB_READS - set(a_ext))))
    seen.append(("statistics", api.call("POST", "/search/statistics", json={"libraryId": library["id"]})))

    created, body = upload(api, files["a.jpg"], "a.jpg")
    seen.append(("upload new", (created, body["status"])))
    again, dup = upload(api, files["a.jpg"], "a.jpg")
    seen.append(("upload same bytes", (again, dup["status"], dup["id"] == body["id"])))
    # Not observed: an upload with `x-immich-checksum` of known bytes. Immich answers "duplicate" before
    # reading the body and may reset the connection while the client still sends it (seen on 3.1.0):
    # a race, which is why the job never sends that header with a streamed body.
    internal = api.asset(body["id"])
    seen.append(("internal checksum is of the bytes", internal["checksum"] == sha1_b64(files["a.jpg"])))
    seen.append(("internal size", internal["exifInfo"]["fileSizeInByte"] == len(files["a.jpg"])))

    api.call("DELETE", "/assets", json={"ids": [body["id"]], "force": False})
    trashed_status, trashed = upload(api, files["a.jpg"], "a.jpg")
    seen.append(("upload of bytes whose twin is trashed", (trashed_status, trashed["status"], trashed["id"] == body["id"],
                                                           api.asset(body["id"])["isTrashed"])))
    restored = api.call("POST", "/trash/restore/assets", json={"ids": [body["id"]]})
    seen.append(("restore", (restored, api.asset(body["id"])["isTrashed"])))

    stack = api.call("POST", "/stacks", json={"assetIds": [listed["b.jpg"]["id"], listed["c.jpg"]["id"]]})
    _, b_int = upload(api, files["b.jpg"], "b.jpg")
    api.call("PUT", "/assets/copy", json={"sourceId": listed["b.jpg"]["id"], "targetId": b_int["id"]})
    seen.append(("copy joins the stack", (api.asset(b_int["id"])["stack"] or {}).get("id") == stack["id"]))
    api.call("PUT", "/assets/copy", json={"sourceId": listed["b.jpg"]["id"], "targetId": b_int["id"]})
    seen.append(("a repeated copy dissolves the stack", (api.asset(b_int["id"])["stack"], api.asset(listed["c.jpg"]["id"])["stack"])))

    album = api.call("POST", "/albums", json={"albumName": f"contract {seed}", "assetIds": [a_ext["id"]]})
    albums = api.get("/albums", params={"assetId": a_ext["id"]})
    seen.append(("albums of an asset", ([x["id"] for x in albums] == [album["id"]], albums[0]["albumThumbnailAssetId"] == a_ext["id"])))
    api.call("PUT", "/assets/copy", json={"sourceId": a_ext["id"], "targetId": body["id"], "stack": False})
    seen.append(("copy adds the album", [x["id"] for x in api.get("/albums", params={"assetId": body["id"]})] == [album["id"]]))

    stored = api.call("PUT", "/assets/metadata", json={"items": [{"assetId": body["id"], "key": "k", "value": {"v": 1}}]})
    seen.append(("bulk metadata answer", sorted(stored[0]) if stored else None))
    seen.append(("metadata read back", [(m["key"], m["value"]) for m in api.get(f"/assets/{body['id']}/metadata")]))

    # what `undo` takes back, each way
    removed = api.call("DELETE", f"/albums/{album['id']}/assets", json={"ids": [body["id"], body["id"]]})
    seen.append(("album remove answer", [(r["id"] == body["id"], r["success"], r.get("error")) for r in removed]))
    seen.append(("album remove again", [(r["success"], r.get("error")) for r in
                                        api.call("DELETE", f"/albums/{album['id']}/assets", json={"ids": [body["id"]]})]))
    refused = api.call("PATCH", f"/albums/{album['id']}", expect=(400,), json={"albumThumbnailAssetId": body["id"]})
    seen.append(("a cover that is not in the album is refused", refused["message"]))
    tag, = api.call("PUT", "/tags", json={"tags": [f"contract-{seed}"]})
    api.call("PUT", "/tags/assets", json={"tagIds": [tag["id"]], "assetIds": [body["id"]]})
    untagged = api.call("DELETE", f"/tags/{tag['id']}/assets", json={"ids": [body["id"]]})
    seen.append(("untag answer", [(r["success"], r.get("error")) for r in untagged],
                 [t["value"] for t in api.asset(body["id"]).get("tags") or []]))
    seen.append(("metadata key delete", status_and_body(api, "DELETE", f"/assets/{body['id']}/metadata/k")[0],
                 [m["key"] for m in api.get(f"/assets/{body['id']}/metadata")]))
    again = api.call("POST", "/stacks", json={"assetIds": [listed["b.jpg"]["id"], listed["c.jpg"]["id"]]})
    code, answer = status_and_body(api, "DELETE", f"/stacks/{again['id']}/assets/{listed['b.jpg']['id']}")
    seen.append(("stack primary cannot leave", code, answer["message"]))
    seen.append(("stack member leaves", status_and_body(api, "DELETE", f"/stacks/{again['id']}/assets/{listed['c.jpg']['id']}")[0],
                 api.asset(listed["c.jpg"]["id"])["stack"]))
    code, answer = status_and_body(api, "DELETE", f"/stacks/{again['id']}/assets/{listed['c.jpg']['id']}")
    seen.append(("stack member leaves again", code, answer["message"]))
    wait_idle(api)  # the upload's dimensions are known once Immich read it: edits and faces need them
    api.call("PUT", f"/assets/{body['id']}/edits", json={"edits": [
        {"action": "crop", "parameters": {"x": 1, "y": 2, "width": 30, "height": 20}}]})
    seen.append(("edits removed", status_and_body(api, "DELETE", f"/assets/{body['id']}/edits")[0],
                 api.get(f"/assets/{body['id']}/edits")["edits"]))
    seen.append(("no edits is not an edit", status_and_body(api, "PUT", f"/assets/{body['id']}/edits", json={"edits": []})[0]))
    person = api.call("POST", "/people", json={"name": f"contract {seed}"})
    api.call("POST", "/faces", json={"assetId": body["id"], "personId": person["id"], "x": 10, "y": 10, "width": 20,
                                      "height": 20, "imageWidth": 100, "imageHeight": 100})
    face, = api.get("/faces", params={"id": body["id"]})
    seen.append(("face deleted for good", status_and_body(api, "DELETE", f"/faces/{face['id']}", json={"force": True})[0],
                 api.get("/faces", params={"id": body["id"]})))

    seen.append(("unknown asset", status_and_body(api, "GET", f"/assets/{uuid.uuid4()}")))
    code, bad = status_and_body(api, "GET", "/assets/not-a-uuid")
    seen.append(("malformed id", (code, bad["message"])))
    code, rating = status_and_body(api, "PUT", f"/assets/{body['id']}", json={"rating": 0})
    seen.append(("rating 0", (code, rating["message"], [e["message"] for e in rating["errors"]])))
    seen.append(("bad key", status_and_body(Api(api.url[:-4], "not-a-key"), "GET", "/users/me")))
    key = api.call("POST", "/api-keys", json={"name": "contract", "permissions": ["asset.read"]})
    limited = Api(api.url[:-4], key["secret"])
    seen.append(("missing permission", status_and_body(limited, "DELETE", "/assets", json={"ids": [body["id"]], "force": False})))
    seen.append(("api-keys/me", sorted(limited.get("/api-keys/me")["permissions"])))
    seen.append(("admin-only for a non-admin", status_and_body(limited, "GET", "/libraries")))
    api.call("DELETE", f"/api-keys/{key['apiKey']['id']}")
    queues = api.get("/queues")
    seen.append(("queues shape", sorted(queues[0]) if queues else None))
    return seen


def real_and_fake(e2e, tmp_path, scenario) -> list[tuple[str, object]]:
    """Run `scenario` on the real Immich and on a fresh fake; assert they saw the same; return the real one."""
    seed = random.randrange(1 << 48)
    real = scenario(e2e.admin, e2e.import_root, seed)
    fake = FakeImmich().start()
    try:
        modelled = scenario(Api(fake.url, Scene(fake).key), tmp_path, seed + 500)
    finally:
        fake.stop()
    differing = [(r, m) for r, m in zip(real, modelled) if r != m]
    assert not differing, "\n".join(f"real: {r}\nfake: {m}" for r, m in differing)
    assert len(real) == len(modelled)
    return real


@pytest.mark.e2e
def test_the_fake_answers_like_the_real_immich(e2e, tmp_path):
    real_and_fake(e2e, tmp_path, observe)


def wait_idle(api: Api) -> None:
    api.wait_idle()  # the fake has nothing queued: it answers at once


def observe_files_and_relations(api: Api, import_root: Path, seed: int) -> list[tuple[str, object]]:
    """What a delete removes, how live photos link, and what a disabled trash keeps (API.md, last
    sections): the rules the delete gate stands on."""
    seen: list[tuple[str, object]] = []
    me = api.me()

    def library(folder: Path) -> dict:
        lib = api.call("POST", "/libraries", json={"ownerId": me["id"], "name": folder.name, "importPaths": [str(folder)]})
        api.call("POST", f"/libraries/{lib['id']}/scan")
        return lib

    # Two libraries over one folder: deleting one's asset for good deletes the file from under the other.
    shared = import_root / f"shared-{uuid.uuid4().hex[:8]}"
    shared.mkdir(parents=True)
    (shared / "s.jpg").write_bytes(media.jpeg(seed + 1))
    first, second = library(shared), library(shared)
    wait_for(api, lambda: all(len(api.search(libraryId=lib["id"])) == 1 for lib in (first, second)))
    mine, = api.search(libraryId=first["id"])
    other, = api.search(libraryId=second["id"])
    seen.append(("two libraries, one file, two assets", (mine["id"] != other["id"], mine["originalPath"] == other["originalPath"])))
    api.call("DELETE", "/assets", json={"ids": [mine["id"]], "force": True})
    wait_for(api, lambda: not (shared / "s.jpg").exists())
    seen.append(("a delete for good removes the file whatever else points at it", (shared / "s.jpg").exists()))
    api.call("POST", f"/libraries/{second['id']}/scan")
    wait_for(api, lambda: api.asset(other["id"])["isOffline"])
    after = api.asset(other["id"])
    seen.append(("the other library's asset goes offline at its next scan", (after["isOffline"], after["isTrashed"])))

    # Live photos link by ContentIdentifier among ALL the user's assets: across libraries, and to an
    # internal video (a phone backup).
    cid = str(uuid.uuid4()).upper()
    stills, videos = import_root / f"stills-{uuid.uuid4().hex[:8]}", import_root / f"videos-{uuid.uuid4().hex[:8]}"
    stills.mkdir(parents=True)
    media.video(seed + 2, videos / "IMG_1.mov", content_id=cid)
    video_lib = library(videos)
    wait_for(api, lambda: len(api.search(libraryId=video_lib["id"])) == 1)
    wait_idle(api)
    (stills / "IMG_1.jpg").write_bytes(media.jpeg(seed + 3, content_id=cid))
    still_lib = library(stills)
    wait_for(api, lambda: len(api.search(libraryId=still_lib["id"])) == 1)
    wait_idle(api)
    still, = api.search(libraryId=still_lib["id"])
    video, = api.search(libraryId=video_lib["id"])
    seen.append(("a still links to a video in another library", (api.asset(still["id"])["livePhotoVideoId"] == video["id"],
                                                                api.asset(video["id"])["visibility"])))
    cid = str(uuid.uuid4()).upper()
    phone = media.video(seed + 4, import_root / f"phone-{uuid.uuid4().hex[:8]}.mov", content_id=cid).read_bytes()
    response = api.session.post(api.url + "/assets", files={"assetData": ("IMG_2.MOV", phone, "video/quicktime")},
                                data={"fileCreatedAt": "2021-06-01T10:00:00.000Z", "fileModifiedAt": "2021-06-01T10:00:00.000Z",
                                      "deviceAssetId": "IMG_2", "deviceId": "contract"})
    internal_video = response.json()["id"]
    wait_idle(api)
    exported = import_root / f"exported-{uuid.uuid4().hex[:8]}"
    exported.mkdir(parents=True)
    (exported / "IMG_2.jpg").write_bytes(media.jpeg(seed + 5, content_id=cid))
    exported_lib = library(exported)
    wait_for(api, lambda: len(api.search(libraryId=exported_lib["id"])) == 1)
    wait_idle(api)
    external_still, = api.search(libraryId=exported_lib["id"])
    seen.append(("an external still links to an internal video", api.asset(external_still["id"])["livePhotoVideoId"] == internal_video))

    # With the trash disabled, a plain delete still only trashes: the file stays until the nightly check.
    config = api.get("/system-config")
    api.call("PUT", "/system-config", json={**config, "trash": {**config["trash"], "enabled": False}})
    try:
        seen.append(("the server says the trash is off", api.get("/server/features")["trash"]))
        target = api.search(libraryId=exported_lib["id"])[0]
        api.call("DELETE", "/assets", json={"ids": [target["id"]], "force": False})
        wait_idle(api)
        seen.append(("with the trash off, a delete only trashes", (api.asset(target["id"])["isTrashed"],
                                                                  (exported / "IMG_2.jpg").exists())))
    finally:
        api.call("PUT", "/system-config", json={**config, "trash": config["trash"]})
    return seen


@pytest.mark.e2e
def test_the_fake_deletes_files_and_links_live_photos_like_the_real_immich(e2e, tmp_path):
    real = real_and_fake(e2e, tmp_path, observe_files_and_relations)
    assert real == [
        ("two libraries, one file, two assets", (True, True)),
        ("a delete for good removes the file whatever else points at it", False),
        ("the other library's asset goes offline at its next scan", (True, True)),
        ("a still links to a video in another library", (True, "hidden")),
        ("an external still links to an internal video", True),
        ("the server says the trash is off", False),
        ("with the trash off, a delete only trashes", (True, True)),
    ], "Immich does what API.md says"


def observe_sidecars_and_names(api: Api, import_root: Path, seed: int) -> list[tuple[str, object]]:
    """Every file a delete removes (API.md "Sidecars"): a RAW+JPEG pair's one `IMG_1.xmp`, read by both,
    goes with the first one deleted, and the copy endpoint then fails for the other; a folder reached
    through a symbolic link is crawled under the link's name, and a delete through it removes the file."""
    seen: list[tuple[str, object]] = []
    me = api.me()

    def library(folder: Path, count: int) -> dict:
        lib = api.call("POST", "/libraries", json={"ownerId": me["id"], "name": folder.name, "importPaths": [str(folder)]})
        api.call("POST", f"/libraries/{lib['id']}/scan")
        wait_for(api, lambda: len(api.search(libraryId=lib["id"])) == count)
        wait_idle(api)
        return lib

    pair = import_root / f"pair-{uuid.uuid4().hex[:8]}"
    pair.mkdir(parents=True)
    (pair / "IMG_1.xmp").write_text(media.xmp(description="Cliffs at dawn", rating=4, tags=("Trips/Ireland",),
                                              darktable="12 edits"))
    (pair / "IMG_1.jpg").write_bytes(media.jpeg(seed + 1))
    (pair / "IMG_1.tif").write_bytes(media.tiff(seed + 2))
    lib = library(pair, 2)
    halves = {Path(a["originalPath"]).suffix: api.asset(a["id"]) for a in api.search(libraryId=lib["id"])}
    seen.append(("both halves read IMG_1.xmp", sorted((s, a["exifInfo"]["description"], a["exifInfo"]["rating"],
                                                      [t["value"] for t in a.get("tags", [])]) for s, a in halves.items())))
    api.call("DELETE", "/assets", json={"ids": [halves[".jpg"]["id"]], "force": True})
    wait_for(api, lambda: not (pair / "IMG_1.jpg").exists())
    wait_idle(api)
    seen.append(("a delete for good removes the shared sidecar", sorted(p.name for p in pair.iterdir())))
    status, body = upload(api, media.jpeg(seed + 3), f"target-{seed}.jpg")
    target = body["id"]
    code, answer = status_and_body(api, "PUT", "/assets/copy", json={"sourceId": halves[".tif"]["id"], "targetId": target})
    seen.append(("the copy fails when the sidecar file is gone", (code, (answer or {}).get("message"))))
    seen.append(("the copy without the sidecar goes through", status_and_body(
        api, "PUT", "/assets/copy", json={"sourceId": halves[".tif"]["id"], "targetId": target, "sidecar": False})[0]))
    seen.append(("a new asset is asked to be read again", status_and_body(
        api, "POST", "/assets/jobs", json={"assetIds": [target], "name": "refresh-metadata"})[0]))

    real = import_root / f"real-{uuid.uuid4().hex[:8]}"
    real.mkdir(parents=True)
    (real / "a.jpg").write_bytes(media.jpeg(seed + 4))
    alias = import_root / f"alias-{uuid.uuid4().hex[:8]}"
    alias.symlink_to(real)
    first, second = library(real, 1), library(alias, 1)
    mine, = api.search(libraryId=first["id"])
    linked, = api.search(libraryId=second["id"])
    seen.append(("a symbolic link is crawled under its own name", (mine["originalPath"] == str(real / "a.jpg"),
                                                                  linked["originalPath"] == str(alias / "a.jpg"))))
    api.call("DELETE", "/assets", json={"ids": [linked["id"]], "force": True})
    wait_for(api, lambda: not (real / "a.jpg").exists())
    seen.append(("a delete through the link removes the one file", (real / "a.jpg").exists()))
    return seen


@pytest.mark.e2e
def test_the_fake_finds_deletes_and_copies_sidecars_and_follows_links_like_the_real_immich(e2e, tmp_path):
    real = real_and_fake(e2e, tmp_path, observe_sidecars_and_names)
    assert real == [
        ("both halves read IMG_1.xmp", [(".jpg", "Cliffs at dawn", 4, ["Trips/Ireland"]),
                                       (".tif", "Cliffs at dawn", 4, ["Trips/Ireland"])]),
        ("a delete for good removes the shared sidecar", ["IMG_1.tif"]),
        ("the copy fails when the sidecar file is gone", (500, "Failed to copy asset")),
        ("the copy without the sidecar goes through", 204),
        ("a new asset is asked to be read again", 204),
        ("a symbolic link is crawled under its own name", (True, True)),
        ("a delete through the link removes the one file", False),
    ], "Immich does what API.md says"


def observe_change_markers(api: Api, import_root: Path, seed: int) -> list[tuple[str, object]]:
    """What moves an asset's and an album's `updatedAt` (issue 28: the markers a bulk proof of "nothing
    changed since" would stand on, each shown here before the gate relies on it)."""
    seen: list[tuple[str, object]] = []
    me = api.me()
    folder = import_root / f"markers-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    for name, offset in (("a.jpg", 1), ("b.jpg", 2)):
        (folder / name).write_bytes(media.jpeg(seed + offset))
    lib = api.call("POST", "/libraries", json={"ownerId": me["id"], "name": folder.name, "importPaths": [str(folder)]})
    api.call("POST", f"/libraries/{lib['id']}/scan")
    wait_for(api, lambda: len(api.search(libraryId=lib["id"])) == 2)
    wait_idle(api)
    by_name = {Path(a["originalPath"]).name: a["id"] for a in api.search(libraryId=lib["id"])}
    a, b = by_name["a.jpg"], by_name["b.jpg"]
    album = api.call("POST", "/albums", json={"albumName": f"markers-{seed}", "assetIds": [b]})
    seen.append(("an album made with an asset has it as its cover at once", album["albumThumbnailAssetId"] == b))
    # an album's cover is set when an asset joins an album without one, not at the next read of albums: the
    # read that follows moves nothing (album.service.ts addAssets)
    empty = api.call("POST", "/albums", json={"albumName": f"markers-empty-{seed}"})
    api.call("PUT", f"/albums/{empty['id']}/assets", json={"ids": [a]})
    added = datetime.now(timezone.utc)
    time.sleep(0.05)  # timestamps are to the millisecond
    shown = api.get(f"/albums/{empty['id']}", params={"withoutAssets": "true"})
    seen.append(("an asset added to an album without a cover", {
        "cover before": empty["albumThumbnailAssetId"], "cover after": shown["albumThumbnailAssetId"] == a,
        "album.updatedAt is the add's": datetime.fromisoformat(shown["updatedAt"].replace("Z", "+00:00")) <= added}))
    api.call("DELETE", f"/albums/{empty['id']}/assets", json={"ids": [a]})
    copy_target = upload(api, media.jpeg(seed + 3), "markers-target.jpg")[1]["id"]
    wait_idle(api)

    def marks() -> tuple[str, str, int]:
        now = api.get(f"/albums/{album['id']}", params={"withoutAssets": "true"})
        return api.asset(a)["updatedAt"], now["updatedAt"], now["assetCount"]

    def moved(what: str, call) -> None:
        before = marks()
        time.sleep(0.05)  # timestamps are to the millisecond
        call()
        wait_idle(api)
        after = marks()
        seen.append((what, {"asset.updatedAt moved": after[0] != before[0], "album.updatedAt moved": after[1] != before[1],
                            "assetCount": after[2] - before[2]}))

    moved("adding the asset to an album", lambda: api.call("PUT", f"/albums/{album['id']}/assets", json={"ids": [a]}))
    moved("taking it out of the album", lambda: api.call("DELETE", f"/albums/{album['id']}/assets", json={"ids": [a]}))
    api.call("PUT", f"/albums/{album['id']}/assets", json={"ids": [a]})
    moved("the copy endpoint adding another asset to the album",
          lambda: api.call("PUT", "/assets/copy", json={"sourceId": a, "targetId": copy_target, "albums": True,
                                                       "sharedLinks": False, "stack": False, "favorite": False,
                                                       "sidecar": False}))
    moved("a key/value written on the asset", lambda: api.call("PUT", "/assets/metadata", json={
        "items": [{"assetId": a, "key": "marker", "value": {"n": 1}}]}))
    moved("a description, rating and favourite", lambda: api.call("PUT", "/assets", json={
        "ids": [a], "description": "changed", "rating": 4, "isFavorite": True}))
    tag = api.call("PUT", "/tags", json={"tags": [f"Markers/{seed}"]})[0]
    moved("a tag", lambda: api.call("PUT", "/tags/assets", json={"tagIds": [tag["id"]], "assetIds": [a]}))
    moved("a stack", lambda: api.call("POST", "/stacks", json={"assetIds": [a, b]}))
    last = datetime.fromisoformat(api.asset(a)["updatedAt"].replace("Z", "+00:00"))
    since = (last + timedelta(milliseconds=1)).isoformat().replace("+00:00", "Z")  # the bound is inclusive
    time.sleep(0.05)
    api.call("PUT", "/assets", json={"ids": [b], "description": "later"})
    wait_idle(api)  # the asset's updatedAt moves with Immich's sidecar write, after the PUT (see below)
    seen.append(("a listing with updatedAfter finds what changed since",
                 sorted(Path(x["originalPath"]).name for x in api.search(libraryId=lib["id"], updatedAfter=since))))
    # the gate's one read of all albums per batch (AlbumMarks) shows the same marker as the album itself
    listed = next(x for x in api.get("/albums") if x["id"] == album["id"])
    seen.append(("the list of all albums shows each album's marker", listed["updatedAt"] == marks()[1]))
    cover = listed["albumThumbnailAssetId"]
    seen.append(("the album's cover is one of its assets", cover in (a, b, copy_target)))
    moved("its cover trashed (Immich picks another cover on the next album read)",
          lambda: api.call("DELETE", "/assets", json={"ids": [cover]}))
    return seen


@pytest.mark.e2e
def test_the_fake_moves_the_change_markers_like_the_real_immich(e2e, tmp_path):
    real = real_and_fake(e2e, tmp_path, observe_change_markers)
    moves = {"asset.updatedAt moved": True, "album.updatedAt moved": False, "assetCount": 0}
    assert real == [
        ("an album made with an asset has it as its cover at once", True),
        ("an asset added to an album without a cover",
         {"cover before": None, "cover after": True, "album.updatedAt is the add's": True}),
        ("adding the asset to an album", {"asset.updatedAt moved": False, "album.updatedAt moved": True, "assetCount": 1}),
        ("taking it out of the album", {"asset.updatedAt moved": False, "album.updatedAt moved": False, "assetCount": -1}),
        ("the copy endpoint adding another asset to the album",
         {"asset.updatedAt moved": False, "album.updatedAt moved": False, "assetCount": 1}),
        ("a key/value written on the asset", {"asset.updatedAt moved": False, "album.updatedAt moved": False, "assetCount": 0}),
        ("a description, rating and favourite", moves),
        ("a tag", moves),
        ("a stack", moves),
        ("a listing with updatedAfter finds what changed since", ["b.jpg"]),
        ("the list of all albums shows each album's marker", True),
        ("the album's cover is one of its assets", True),
        ("its cover trashed (Immich picks another cover on the next album read)",
         {"asset.updatedAt moved": False, "album.updatedAt moved": True, "assetCount": -1}),
    ], "what a bulk proof stands on (issue 28)"
    # Seen on the real server only (the fake has no queues): a description's PUT does not move the asset's
    # updatedAt by itself; Immich's sidecar-write job does, a moment later. A proof by updatedAt must wait
    # for Immich's queues, or it misses an edit made just before it.
    admin = e2e.admin
    folder = e2e.import_root / f"markers-late-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    (folder / "c.jpg").write_bytes(media.jpeg(random.randrange(1 << 48)))
    lib = admin.call("POST", "/libraries", json={"ownerId": admin.me()["id"], "name": folder.name, "importPaths": [str(folder)]})
    admin.call("POST", f"/libraries/{lib['id']}/scan")
    wait_for(admin, lambda: len(admin.search(libraryId=lib["id"])) == 1)
    admin.wait_idle()
    asset = admin.search(libraryId=lib["id"])[0]["id"]
    before = admin.asset(asset)["updatedAt"]
    admin.call("PUT", "/assets", json={"ids": [asset], "description": "late"})
    right_after = admin.asset(asset)["updatedAt"]
    admin.wait_idle()
    assert (right_after == before, admin.asset(asset)["updatedAt"] != before) == (True, True)


GATE_FIELDS = ("id", "ownerId", "libraryId", "checksum", "isTrashed", "visibility", "isFavorite", "originalPath",
               "livePhotoVideoId")
GATE_EXIF = ("description", "rating", "dateTimeOriginal", "timeZone", "latitude", "longitude", "fileSizeInByte")


def observe_gate_listing(api: Api, import_root: Path, seed: int) -> list[tuple[str, object]]:
    """The gate's one listing per batch (`evidence.target_now`): `POST /search/metadata` with `updatedAfter`
    the earliest verified target's `updatedAt` holds each target with every field the gate compares, as
    `GET /assets/{id}` shows them; trashed ones too; a locked one is out of its reach (then read alone)."""
    seen: list[tuple[str, object]] = []
    ids = [upload(api, media.jpeg(seed + i), f"listing-{seed}-{i}.jpg")[1]["id"] for i in range(3)]
    wait_idle(api)
    first, second, third = ids
    bound = min(api.asset(i)["updatedAt"] for i in ids)
    api.call("PUT", "/assets", json={"ids": [second], "description": "edited", "rating": 2, "isFavorite": True})
    api.call("DELETE", "/assets", json={"ids": [third]})
    wait_idle(api)

    def fields(asset: dict) -> dict:
        exif = asset.get("exifInfo") or {}
        return {**{k: asset.get(k) for k in GATE_FIELDS}, **{k: exif.get(k) for k in GATE_EXIF}}

    listed = {a["id"]: a for a in api.search(updatedAfter=bound, withExif=True, withDeleted=True)}
    seen.append(("each asset updated since the bound is listed", sorted(i in listed for i in ids)))
    seen.append(("with the fields the gate compares, as GET /assets/{id} shows them",
                 [fields(listed[i]) == fields(api.asset(i)) for i in ids]))
    seen.append(("the edit and the trash show in it", (listed[second]["exifInfo"]["description"],
                                                      listed[second]["isFavorite"], listed[third]["isTrashed"])))
    api.call("PUT", "/assets", json={"ids": [first], "visibility": "locked"})
    seen.append(("a locked asset is out of its reach",
                 first in {a["id"] for a in api.search(updatedAfter=bound, withExif=True, withDeleted=True)}))
    return seen


@pytest.mark.e2e
def test_the_gates_listing_shows_what_a_read_of_each_target_shows(e2e, tmp_path):
    real = real_and_fake(e2e, tmp_path, observe_gate_listing)
    assert real == [
        ("each asset updated since the bound is listed", [True, True, True]),
        ("with the fields the gate compares, as GET /assets/{id} shows them", [True, True, True]),
        ("the edit and the trash show in it", ("edited", True, True)),
        ("a locked asset is out of its reach", False),
    ], "what the gate's listing stands on (issue 28)"


def observe_listing_in_no_album(api: Api, import_root: Path, seed: int) -> list[tuple[str, object]]:
    """The listing's first phase (`job/run/listing.py`): `isNotInAlbum` lists the assets in no album, with
    `updatedAt` as `GET /assets/{id}` shows it; an asset in an album is left out, one taken out of its album
    is listed again."""
    seen: list[tuple[str, object]] = []
    stem = f"noalbum-{seed}-"
    ids = [upload(api, media.jpeg(seed + i), f"{stem}{i}.jpg")[1]["id"] for i in range(3)]
    wait_idle(api)
    kept = api.call("POST", "/albums", json={"albumName": f"kept {seed}", "assetIds": [ids[1]]})
    left = api.call("POST", "/albums", json={"albumName": f"left {seed}", "assetIds": [ids[2]]})
    api.call("DELETE", f"/albums/{left['id']}/assets", json={"ids": [ids[2]]})

    def listed() -> dict[str, dict]:
        found = api.search(isNotInAlbum=True, originalFileName=stem, withExif=True)
        return {a["originalFileName"].removeprefix(stem): a for a in found}

    first = listed()
    seen.append(("listed in no album", sorted(first)))
    seen.append(("updatedAt as GET /assets/{id} shows it", first["0.jpg"]["updatedAt"] == api.asset(ids[0])["updatedAt"]))
    api.call("PUT", f"/albums/{kept['id']}/assets", json={"ids": [ids[0]]})
    seen.append(("after joining an album", sorted(listed())))
    return seen


@pytest.mark.e2e
def test_the_listing_in_no_album_is_immichs(e2e, tmp_path):
    real = real_and_fake(e2e, tmp_path, observe_listing_in_no_album)
    assert real == [
        ("listed in no album", ["0.jpg", "2.jpg"]),
        ("updatedAt as GET /assets/{id} shows it", True),
        ("after joining an album", ["2.jpg"]),
    ], "what the listing's first phase stands on (issue 28)"


def observe_listing_whole(api: Api, import_root: Path, seed: int) -> list[tuple[str, object]]:
    """The listing's first phase where a page stands for each asset's own read at its unit's start
    (`Capabilities.listed_record`, `Unit.listed_at`): assets in no album, untagged (`tagIds: null`) and
    unstacked (`withStacked: false`), listed with their people and EXIF, carry every field of
    `GET /assets/{id}` the job reads (the job's own model of an asset), tags being none."""
    from job.immich.models import Asset  # the fields the job reads, and how it reads them

    seen: list[tuple[str, object]] = []
    stem = f"whole-{seed}-"
    ids = [upload(api, media.jpeg(seed + i), f"{stem}{i}.jpg")[1]["id"] for i in range(6)]
    wait_idle(api)  # faces need the image's size, known once Immich read it
    tag, = api.call("PUT", "/tags", json={"tags": [f"whole-{seed}"]})
    api.call("PUT", "/tags/assets", json={"tagIds": [tag["id"]], "assetIds": [ids[1]]})
    api.call("POST", "/stacks", json={"assetIds": [ids[2], ids[3]]})
    person = api.call("POST", "/people", json={"name": "whole"})
    api.call("POST", "/faces", json={"assetId": ids[4], "personId": person["id"], "x": 10, "y": 10, "width": 20,
                                      "height": 20, "imageWidth": 100, "imageHeight": 100})
    api.call("PUT", f"/assets/{ids[4]}", json={"isFavorite": True, "description": f"whole {seed}", "rating": 4})
    api.call("POST", "/albums", json={"albumName": f"whole {seed}", "assetIds": [ids[5]]})
    wait_idle(api)  # the description's sidecar write

    listed = {a["originalFileName"].removeprefix(stem): a
              for a in api.search(isNotInAlbum=True, tagIds=None, withStacked=False, withPeople=True, withExif=True,
                                  originalFileName=stem)}
    seen.append(("listed whole", sorted(listed)))
    differing = {}
    for name, item in sorted(listed.items()):
        as_listed = Asset.model_validate(item).model_copy(update={"tags": []}).model_dump()
        own = Asset.model_validate(api.asset(item["id"])).model_dump()
        differing[name] = sorted(k for k in own if own[k] != as_listed[k])
    seen.append(("fields that differ from GET /assets/{id}", differing))
    seen.append(("people as listed", [p["name"] for p in listed["4.jpg"]["people"]]))
    without = api.search(isNotInAlbum=True, tagIds=None, withStacked=False, withExif=True, originalFileName=stem)
    seen.append(("people without withPeople", {a["originalFileName"].removeprefix(stem): a["people"] for a in without}))
    # the gate's listing of its sources (`Gate._sources_listed`): the same filters over a window of
    # `fileCreatedAt`, both bounds inclusive; only presence counts, as a locked asset is left out and
    # its own read is refused to an API key too (then the gate holds: nothing of it is deleted)
    plain = listed["0.jpg"]
    window = dict(isNotInAlbum=True, tagIds=None, withStacked=False, withPeople=True, withExif=True, originalFileName=stem,
                  takenAfter=plain["fileCreatedAt"], takenBefore=plain["fileCreatedAt"])
    seen.append(("a window of its own fileCreatedAt lists it", plain["id"] in {a["id"] for a in api.search(**window)}))
    api.call("PUT", "/assets", json={"ids": [plain["id"]], "visibility": "locked"})
    seen.append(("locked: listed in that window", plain["id"] in {a["id"] for a in api.search(**window)}))
    refused = api.call("GET", f"/assets/{plain['id']}", expect=(200, 400, 404))
    seen.append(("locked: its own read with the key", refused.get("message") if isinstance(refused, dict) else refused))
    return seen


@pytest.mark.e2e
def test_a_whole_listing_page_is_the_assets_own_read(e2e, tmp_path):
    real = real_and_fake(e2e, tmp_path, observe_listing_whole)
    assert real == [
        ("listed whole", ["0.jpg", "4.jpg"]),
        ("fields that differ from GET /assets/{id}", {"0.jpg": [], "4.jpg": []}),
        ("people as listed", ["whole"]),
        ("people without withPeople", {"0.jpg": [], "4.jpg": []}),
        ("a window of its own fileCreatedAt lists it", True),
        ("locked: listed in that window", False),
        ("locked: its own read with the key", "Not found or no asset.read access"),
    ], "what a unit's start and the gate's listing of its sources stand on when a page is a record (issue 28)"

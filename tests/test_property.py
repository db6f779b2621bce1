"""Property-based tests (hypothesis): random curated libraries, and random fault schedules with random
kills. After the job has run to completion, every source's curated record is covered by its target,
nothing is doubled, and a further run changes nothing.

CI runs a small, derandomized number of examples; EXT2INT_LONG=1 runs 500 random ones (bench/long.sh).
"""

from __future__ import annotations

import os
import re
import signal
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.clock import Later
from tests.conftest import CLAIMS_EXPIRED, spawn_job
from tests.fake_immich import FakeImmich, Scene, content
from tests.invariant import check, snapshot

LONG = os.environ.get("EXT2INT_LONG") == "1"
COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
              derandomize=not LONG, database=None,
              # No "explain" phase: it traces every line the job runs (Python < 3.12), which made the
              # re-run of a found failure slower than the per-test timeout.
              phases=[phase for phase in Phase if phase is not Phase.explain])


def build_world(data, scene: Scene):
    """A random library: photos with random curation, live pairs, stacks, internal twins."""
    lib = scene.library()
    people = [scene.person(n) for n in ("Alice", "Bob")]
    count = data.draw(st.integers(1, 6), label="photos")
    photos = []
    for i in range(count):
        photo = scene.photo(lib, f"p{i}.jpg", gps=data.draw(st.sampled_from([None, (48.85, 2.29)]), label="gps"))
        photos.append(photo)
        fields = {}
        if data.draw(st.booleans(), label="fav"):
            fields["isFavorite"] = True
        if data.draw(st.integers(0, 4), label="archive") == 0:
            fields["visibility"] = "archive"
        description = data.draw(st.sampled_from(["", "dawn", "Käse & Brot"]), label="description")
        if description:
            fields["description"] = description
        rating = data.draw(st.sampled_from([None, None, -1, 1, 3, 5]), label="rating")
        if rating is not None:
            fields["rating"] = rating
        if data.draw(st.integers(0, 3), label="date") == 0:
            fields.update(dateTimeOriginal="2015-08-09T18:30:00+02:00", timeZone="Europe/Paris")
        if fields:
            scene.edit(photo, **fields)
        tags = data.draw(st.lists(st.sampled_from(["Trips/Ireland", "Family", "Best"]), unique=True, max_size=2), label="tags")
        if tags:
            scene.tag(photo, *tags)
        if data.draw(st.integers(0, 3), label="kv") == 0:
            scene.kv(photo, "note", {"i": i})
        if data.draw(st.integers(0, 3), label="crop") == 0:
            scene.crop(photo)
        for person in data.draw(st.lists(st.sampled_from(people), unique_by=lambda p: p.id, max_size=2), label="faces"):
            scene.face(photo, person, (100 + 150 * people.index(person), 80, 220 + 150 * people.index(person), 220))
        twin = data.draw(st.sampled_from(["none", "none", "none", "live", "trashed"]), label="twin")
        if twin != "none":
            scene.internal(photo.blob.read_all(), trashed=twin == "trashed")
    for name in ("A", "B"):
        members = data.draw(st.lists(st.sampled_from(photos), unique_by=lambda p: p.id, max_size=3), label=f"album {name}")
        if members:
            scene.album(name, *members, cover=data.draw(st.sampled_from(members), label="cover"))
    unstacked = list(photos)
    if len(unstacked) >= 2 and data.draw(st.booleans(), label="stack"):
        scene.stack(unstacked[0], unstacked[1])
    for j in range(data.draw(st.integers(0, 2), label="live pairs")):
        still, _ = scene.live(lib, f"l{j}")
        if data.draw(st.booleans(), label="live fav"):
            scene.favorite(still)
    if data.draw(st.integers(0, 4), label="link") == 0:
        scene.link(photos[0])
    return [lib, *relations(data, scene, lib)]


def relations(data, scene: Scene, lib) -> list:
    """What else points at the library's files: another user's library over a shared folder, one of the
    user's own libraries over a sub-folder, a phone backup's live video, the same bytes at two paths, a
    RAW+JPEG pair reading one sidecar (perhaps gone from disk), a library over a symbolic link."""
    libraries = []
    chosen = data.draw(st.lists(st.sampled_from(["shared", "overlap", "phone_live", "duplicate", "family", "raw_pair",
                                                 "linked"]), unique=True, max_size=3), label="relations")
    if "shared" in chosen:
        scene.library("theirs", owner=scene.other, paths=["/mnt/photos/shared"])
        scene.favorite(scene.photo(lib, "shared/family.jpg"))
    if "overlap" in chosen:
        year = scene.library("2020", paths=["/mnt/photos/2020"])
        photo = scene.photo(lib, "2020/a.jpg")
        twin = scene.scan(year)[0]
        if data.draw(st.booleans(), label="overlap curation"):
            scene.album("From 2020", twin)
            scene.favorite(photo)
        libraries.append(year)
    if "phone_live" in chosen:
        scene.internal(content(scene.next_seed(), 9000), "IMG_9.MOV", content_id="CID-P")
        scene.photo(lib, "IMG_9.jpg", content_id="CID-P")
    if "family" in chosen:  # another user's library over a shared folder, moved by the same run (both keys)
        dads = scene.library("Family (Dad)", owner=scene.other, paths=["/mnt/photos/family"])
        mine = scene.photo(lib, "family/kids.jpg")
        his = scene.scan(dads)[0]
        if data.draw(st.booleans(), label="family curation"):
            scene.favorite(mine)
            scene.album("Dad's", his, owner=scene.other)
            scene.tag(his, "Kids")
        libraries.append(dads)
    if "raw_pair" in chosen:
        sidecar = scene.sidecar(lib, "cam/IMG_5.xmp", description="from lightroom", rating=4, tags=["Best"],
                                darktable="history")
        raw, jpeg = scene.photo(lib, "cam/IMG_5.CR2"), scene.photo(lib, "cam/IMG_5.JPG")
        if data.draw(st.booleans(), label="pair curation"):
            scene.favorite(jpeg)
            scene.album("Pair", raw)
        if data.draw(st.integers(0, 3), label="pair sidecar gone") == 0:
            with scene.world.lock:
                del scene.world.disk_sidecars[sidecar]
    if "linked" in chosen:  # declared with EXT2INT_PATH_ALIASES (with_keys)
        scene.world.link("/linked", "/mnt/photos/linked")
        linked = scene.library("linked", paths=["/linked"])
        photo = scene.photo(lib, "linked/x.jpg")
        twin = scene.scan(linked)[0]
        if data.draw(st.booleans(), label="linked curation"):
            scene.favorite(twin)
            scene.edit(photo, description="under the mount")
        libraries.append(linked)
    if "duplicate" in chosen:
        data_bytes = content(scene.next_seed())
        first = scene.photo(lib, "dup/a.jpg", data=data_bytes)
        second = scene.photo(lib, "dup/b.jpg", data=data_bytes)
        for photo in (first, second):
            description = data.draw(st.sampled_from(["", "same", "other"]), label="dup description")
            if description:
                scene.edit(photo, description=description)
    return libraries


def with_keys(scene, libraries, **more: str) -> dict[str, str]:
    """The job's environment: the admin's key, or both users' (a folder of keys) when a library of the other
    user is among those to move."""
    env = scene.env(**more)
    if any(lib.owner_id == scene.other.id for lib in libraries):
        folder = Path(tempfile.mkdtemp(prefix="ext2int-keys-"))
        (folder / "admin").write_text(scene.key)
        (folder / "other").write_text(scene.other_key)
        env["IMMICH_API_KEY"] = ""
        env["IMMICH_API_KEYS_DIR"] = str(folder)
    env["EXT2INT_LIBRARY_IDS"] = ",".join(lib.id for lib in libraries)
    if scene.world.folder_links:
        env["EXT2INT_PATH_ALIASES"] = ",".join(f"{a}={b}" for a, b in scene.world.folder_links.items())
    return env


def run_to_completion(scene, run_job, env, clock=None) -> set[str]:
    """Run until a run has nothing left to do: enough runs for every unit at the batch size, plus a few
    for retries of failed or waiting ones. Returns the ids the last runs held (with their video halves):
    the job said why they stay."""
    units = sum(1 for a in scene.world.assets.values() if not a.internal and a.visibility != "hidden")
    limit = units // int(env.get("EXT2INT_BATCH_SIZE", "100")) + 6
    held: set[str] = set()
    for _ in range(limit):
        result = run_job(env, clock=clock)
        assert result.code in (0, 1), result.stderr
        held = {o["asset_id"] for o in result.outcomes("held")}
        # "claimed" is transient: a claim write of a dead process that Immich applied late (a request the
        # job had given up on) can meet this run's claim and make it back off, as the protocol wants; the
        # next run takes the unit. A claim that never ends would exhaust the runs allowed, and fail.
        claimed = any(o["reason"] == "claimed" for o in result.outcomes("skipped"))
        if not result.outcomes("uploaded") and not result.outcomes("merged") and not result.outcomes("failed") \
                and not result.outcomes("waiting") and not claimed:
            with scene.world.lock:
                videos = {scene.world.assets[i].live_photo_video_id for i in held if i in scene.world.assets}
            return held | {v for v in videos if v}
    raise AssertionError("the job did not finish within the runs allowed")


@settings(max_examples=500 if LONG else 25, **COMMON)
@given(data=st.data())
def test_any_curated_library_moves_completely_and_a_rerun_changes_nothing(data, run_job):
    fake = FakeImmich().start()
    try:
        scene = Scene(fake)
        libraries = build_world(data, scene)
        snap = snapshot(scene.world, [lib.id for lib in libraries])
        env = with_keys(scene, libraries, EXT2INT_BATCH_SIZE=str(data.draw(st.integers(1, 8), label="batch")),
                        EXT2INT_CONCURRENCY=str(data.draw(st.integers(1, 3), label="concurrency")))
        held = run_to_completion(scene, run_job, env)
        check(scene.world, snap, held=held)
        reasons = {o["reason"] for o in run_job(env).outcomes("held")}
        assert reasons <= {"conflict", "shared_with_user"}, reasons
        fake.clear_log()
        assert run_job(env).code == 0 and not fake.mutating_requests()
    finally:
        fake.stop()


ROUTES = [
    ("GET", "/assets/{id}"), ("GET", "/albums"), ("GET", "/assets/{id}/metadata"), ("GET", "/assets/{id}/original"),
    ("POST", "/assets"), ("PUT", "/assets/metadata"), ("PUT", "/assets/copy"), ("PUT", "/assets"),
    ("PUT", "/tags/assets"), ("DELETE", "/assets"), ("POST", "/search/metadata"), ("GET", "/faces"),
    ("POST", "/faces"), ("PUT", "/stacks/{id}"), ("PATCH", "/albums/{id}"), ("POST", "/trash/restore/assets"),
]
FAULTS = st.sampled_from([
    dict(action="status", status=500), dict(action="status", status=502), dict(action="status", status=503),
    dict(action="status", status=429, retry_after=1), dict(action="drop"), dict(action="drop_after"),
    dict(action="delay", seconds=1.5), dict(action="truncate", after_bytes=700), dict(action="wrong_length", delta=-50),
    dict(action="wrong_length", delta=50), dict(action="slow", seconds=0.002),
])


@settings(max_examples=500 if LONG else 20, **COMMON)
@given(data=st.data())
def test_random_faults_and_kills_never_lose_anything(data, run_job):
    fake = FakeImmich().start()
    try:
        scene = Scene(fake)
        lib = scene.library()
        for i in range(data.draw(st.integers(1, 4), label="photos")):
            photo = scene.photo(lib, f"p{i}.jpg", size=data.draw(st.sampled_from([2000, 60_000]), label="size"))
            scene.album("A", photo)
            scene.tag(photo, "T")
            if i == 1:
                scene.internal(photo.blob.read_all(), trashed=data.draw(st.booleans(), label="trashed twin"))
        scene.live(lib, "l")
        libraries = [lib]
        if data.draw(st.booleans(), label="family"):  # a shared folder, both users' keys: it goes once, last
            dads = scene.library("Family (Dad)", owner=scene.other, paths=["/mnt/photos/family"])
            scene.album("Ours", scene.photo(lib, "family/kids.jpg", size=60_000))
            scene.favorite(scene.scan(dads)[0])
            libraries.append(dads)
        snap = snapshot(scene.world, [library.id for library in libraries])
        for _ in range(data.draw(st.integers(1, 6), label="faults")):
            method, route = data.draw(st.sampled_from(ROUTES), label="route")
            fault = dict(data.draw(FAULTS, label="fault"))
            fake.faults.add(method=method, route=route, nth=data.draw(st.integers(1, 6), label="nth"),
                            times=data.draw(st.integers(1, 2), label="times"), **fault)
        kill = data.draw(st.one_of(st.none(), st.tuples(st.sampled_from(["kill", "kill_after", "kill_mid_body"]),
                                                        st.sampled_from(ROUTES), st.integers(1, 4))), label="kill")
        if kill:
            action, (method, route), nth = kill
            fake.faults.add(action, method=method, route=route, nth=nth, after_bytes=900)
        # Immich restarting inside the first uploads: their rows stay, their key/values and metadata jobs are lost
        scene.world.restarts_in_upload = data.draw(st.integers(0, 2), label="restarts in upload")
        env = with_keys(scene, libraries, EXT2INT_HTTP_TIMEOUT="1", EXT2INT_HTTP_RETRIES="2", EXT2INT_SETTLE_TIMEOUT="2",
                        EXT2INT_CONCURRENCY=str(data.draw(st.integers(1, 2), label="concurrency")))
        proc = spawn_job(env)
        # sometimes a second process works on the same library at the same time (a CronJob and a manual run)
        second = spawn_job(env) if data.draw(st.booleans(), label="second process") else None
        fake.on_kill = lambda: (os.kill(proc.pid, signal.SIGKILL), proc.wait())
        _, stderr = proc.communicate(timeout=120)
        if second is not None:
            _, second_err = second.communicate(timeout=120)
            assert second.returncode in (0, 1, 3), second_err
        if proc.returncode == 3:
            # Allowed for one reason: a call the whole run depends on failed for good (a 500, which is
            # never retried, or faults that outlasted the retries), and the message names that call.
            assert re.search(r"^ext2int: .*(POST|GET|PUT) /api/", stderr, re.MULTILINE), stderr
        else:
            assert proc.returncode in (0, 1, -signal.SIGKILL), (proc.returncode, stderr)
        check(scene.world, snap, require_done=False)

        fake.faults.clear()
        fake.on_kill = None
        held = run_to_completion(scene, run_job, env, clock=Later(CLAIMS_EXPIRED))  # a killed run's claims expired
        check(scene.world, snap, held=held)
    finally:
        fake.stop()


@settings(max_examples=500 if LONG else 8, **COMMON)
@given(data=st.data())
def test_any_curated_library_moved_then_undone_is_as_it_was(data, run_job):
    """Move a random curated library (with random relations) to completion, then undo everything: every
    asset, external and internal, of every user, is back as it was, field by field, and what the move
    made is in the trash."""
    from tests.test_undo import assert_as_before, state

    fake = FakeImmich().start()
    try:
        scene = Scene(fake)
        libraries = build_world(data, scene)
        before = state(scene)
        env = with_keys(scene, libraries, EXT2INT_BATCH_SIZE=str(data.draw(st.integers(2, 8), label="batch")))
        run_to_completion(scene, run_job, env)
        undone = run_job(env, command="undo")
        assert undone.code == 0, undone.stderr
        assert not undone.outcomes("failed") and not undone.outcomes("held"), undone.report["outcomes"]
        assert_as_before(scene, before)
    finally:
        fake.stop()

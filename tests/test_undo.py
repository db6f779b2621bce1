"""Trust after the move: `verify` proves every moved asset again (and names what changed since, and what
is damaged); `undo` takes a run back while Immich's trash holds its external assets, returning the
external and the internal library to their state before it, field by field, also when killed anywhere
and run again."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import replace

import pytest

from tests.conftest import spawn_job
from tests.fake_immich import FakeImmich, Scene, content
from tests.invariant import curated
from tests.test_kill_matrix import kill_points as traced_kill_points


def curated_world(scene: Scene):
    """A library as a user curates it: favourites, albums (with their covers), tags, a description, a
    person, key/values, a live photo, a stack, and a photo whose bytes a phone backup already holds,
    with its own values."""
    lib = scene.library()
    a = scene.curated_photo(lib)
    scene.face(a, scene.person("Alice"))
    still, _ = scene.live(lib, "l01")
    scene.album("Live", still, cover=still)
    s1, s2 = scene.photo(lib, "s1.jpg"), scene.photo(lib, "s2.jpg")
    scene.stack(s1, s2)
    b = scene.photo(lib, "b.jpg")
    scene.edit(b, rating=4)
    scene.tag(b, "Best")
    scene.album("B", b, cover=b)
    twin = scene.internal(b.blob.read_all(), description="from the phone")
    return lib, twin


def state(scene: Scene) -> dict:
    """Every asset's curation, and whether it is live, by id; an album without a cover shows the one
    Immich picks for it at the next album listing (updateThumbnails), as a user sees it."""
    with scene.world.lock:
        scene.world.update_thumbnails()
        return {a.id: (a.deleted_at is None, curated(scene.world, a)) for a in scene.world.assets.values()}


def assert_as_before(scene: Scene, before: dict) -> None:
    """Every asset as it was; what the move made is in the trash."""
    now = state(scene)
    for asset_id, (live, record) in before.items():
        assert asset_id in now, f"{asset_id} is gone"
        live_now, record_now = now[asset_id]
        assert live_now == live, f"{asset_id}: live {live} before, {live_now} now"
        if scene.world.assets[asset_id].internal:  # what undo says it does not take back (README): from a twin
            assert record.links <= record_now.links and record.live in (None, record_now.live), (record, record_now)
            record_now = replace(record_now, links=record.links, live=record.live)
        assert record_now == record, f"{asset_id}: {record} before, {record_now} now"
    for asset_id, (live, _) in now.items():
        if asset_id not in before:
            assert not live, f"{asset_id}, made by the move, is still live"


def test_verify_proves_every_moved_asset_and_names_what_changed_and_what_is_damaged(scene, run_job):
    lib, twin = curated_world(scene)
    moved = run_job(scene.env())
    assert moved.code == 0, moved.stderr
    targets = {o["target_id"]: o["path"] for o in moved.outcomes() if o["kind"] in ("uploaded", "merged")}

    clean = run_job(scene.env(EXT2INT_VERIFY_HASH="all"), command="verify")
    assert clean.code == 0, clean.stderr
    copies = sum(1 for a in scene.world.assets.values() if a.internal and "immich-ext2int" in a.metadata)
    assert copies == len(targets) + 1, "each moved unit's copy, and the live photo's video"
    assert clean.counts()["verified"] == copies and not clean.outcomes("damaged") and not clean.outcomes("changed")
    assert all(o["reason"] == "bytes hashed again and curation hold" for o in clean.outcomes("verified"))
    scene.fake.clear_log()

    edited_id, damaged_id = sorted(t for t in targets if t != twin.id)[:2]
    scene.edit(scene.world.assets[edited_id], description="edited later, on purpose")
    with scene.world.lock:
        scene.world.assets[damaged_id].blob = scene.world.assets[twin.id].blob  # the file under it changed
    audit = run_job(scene.env(EXT2INT_VERIFY_HASH="all"), command="verify")
    assert audit.code == 1, "a damaged copy"
    changed, = audit.outcomes("changed")
    assert changed["asset_id"] == edited_id and "description" in changed["differences"][0]
    damaged, = audit.outcomes("damaged")
    assert damaged["asset_id"] == damaged_id
    assert not scene.fake.mutating_requests(), "verify changes nothing"
    assert "verify: " in audit.stdout or "verify finished" in audit.stderr


def test_undo_of_a_run_returns_both_libraries_to_their_state_before_it(scene, run_job):
    lib, twin = curated_world(scene)
    before = state(scene)
    moved = run_job(scene.env())
    assert moved.code == 0 and not moved.outcomes("held"), moved.report["counts"]
    scene.fake.clear_log()

    preview = run_job(scene.env(), command="undo-plan")
    assert preview.code == 0 and not scene.fake.mutating_requests(), "undo-plan changes nothing"
    plans = [o["plan"] for o in preview.outcomes("planned")]
    assert any(p.startswith("undo: restore the external asset; trash its copy") for p in plans)
    assert any("take back from the internal twin" in p for p in plans)

    undone = run_job(scene.env(), command="undo")
    assert undone.code == 0, undone.stderr
    assert not undone.outcomes("failed") and not undone.outcomes("held"), undone.report["outcomes"]
    assert_as_before(scene, before)

    again = run_job(scene.env())
    assert again.counts()["uploaded"] == 0 and again.counts()["skipped"] >= 1, "runs leave what was undone"
    assert all(o["reason"] == "undone" for o in again.outcomes("skipped"))
    assert_as_before(scene, before)
    assert run_job(scene.env(), command="undo").counts()["undone"] == 0, "nothing left to undo"

    redo = run_job(scene.env(EXT2INT_MOVE_UNDONE="true"))
    assert redo.code == 0 and redo.report["assetsMoved"] == moved.report["assetsMoved"], "moved again when asked"


def test_undo_takes_back_one_run_only(scene, run_job):
    lib = scene.library()
    for i in range(4):
        scene.photo(lib, f"p{i}.jpg")
    first = run_job(scene.env(EXT2INT_BATCH_SIZE="2", EXT2INT_CONCURRENCY="1"))
    between = state(scene)
    second = run_job(scene.env(EXT2INT_BATCH_SIZE="2", EXT2INT_CONCURRENCY="1"))
    assert first.counts()["uploaded"] == second.counts()["uploaded"] == 2
    undone = run_job(scene.env(EXT2INT_RUN_ID=second.report["run"]), command="undo")
    assert undone.counts()["undone"] == 2
    assert_as_before(scene, between)


def test_a_copy_curated_since_the_move_stays_and_its_source_comes_back(scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    moved = run_job(scene.env())
    target = scene.world.assets[moved.outcomes("uploaded")[0]["target_id"]]
    scene.album("Added after the move", target, cover=target)
    undone = run_job(scene.env(), command="undo")
    held, = undone.outcomes("held")
    assert held["reason"] == "curated_since" and "albums" in held["differences"][0]
    assert photo.deleted_at is None and target.deleted_at is None, "both stay: nothing of the later curation is lost"


def test_a_move_whose_external_asset_is_gone_cannot_be_undone(scene, run_job):
    lib = scene.library()
    scene.photo(lib, "a.jpg")
    moved = run_job(scene.env(EXT2INT_DELETE="force"))
    target_id = moved.outcomes("uploaded")[0]["target_id"]
    undone = run_job(scene.env(), command="undo")
    failed, = undone.outcomes("failed")
    assert "cannot be undone" in failed["reason"] and scene.world.assets[target_id].deleted_at is None


def undo_trace() -> list[tuple[str, str, str, int]]:
    """Kill points: every changing request of a clean undo of the curated world."""
    fake = FakeImmich().start()
    try:
        scene = Scene(fake)
        curated_world(scene)
        for command in ("run", "undo"):
            if command == "undo":
                fake.clear_log()
            proc = spawn_job(scene.env(EXT2INT_CONCURRENCY="1"), command)
            proc.communicate(timeout=60)
            assert proc.returncode == 0
        return traced_kill_points(fake.log)
    finally:
        fake.stop()


def kill_points() -> list[tuple[str, str, str, int]]:
    """CI: before and after the first and the last request of each kind of the trace (a sample of every
    step of an undo); EXT2INT_LONG=1 (bench/long.sh): every one."""
    points = undo_trace()
    if os.environ.get("EXT2INT_LONG") == "1":
        return points
    last: dict[tuple[str, str, str], int] = {}
    for action, method, route, nth in points:
        last[(action, method, route)] = max(nth, last.get((action, method, route), 0))
    return [p for p in points if p[3] == 1 or p[3] == last[p[:3]]]


@pytest.mark.parametrize("point", kill_points(), ids=lambda p: f"{p[0]}-{p[1]}{p[2]}#{p[3]}")
def test_an_undo_killed_anywhere_finishes_when_run_again(point, fake, scene, run_job):
    curated_world(scene)
    before = state(scene)
    assert run_job(scene.env(EXT2INT_CONCURRENCY="1")).code == 0
    action, method, route, nth = point
    fake.faults.add(action, method=method, route=route, nth=nth)
    proc = spawn_job(scene.env(), "undo")

    def kill() -> None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    fake.on_kill = kill
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the kill point was never reached"
    with scene.world.lock:  # nothing lost at the moment of the kill: every photo is live somewhere
        for asset_id, (live, _) in before.items():
            asset = scene.world.assets[asset_id]
            if asset.deleted_at is not None and not asset.internal:
                assert any(t.internal and t.deleted_at is None and t.blob.sha1 == asset.blob.sha1
                           for t in scene.world.assets.values()), f"{asset.original_path}: no live copy"
    fake.faults.clear()
    fake.on_kill = None
    from tests.clock import Later
    from tests.conftest import CLAIMS_EXPIRED

    result = run_job(scene.env(), command="undo", clock=Later(CLAIMS_EXPIRED))
    assert result.code == 0, result.stderr + json.dumps(result.report["outcomes"])
    assert_as_before(scene, before)


def test_a_twin_the_move_took_out_of_the_trash_goes_back_there(scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    scene.album("A", photo, cover=photo)
    twin = scene.internal(photo.blob.read_all(), trashed=True, description="the phone's")
    before = state(scene)
    moved = run_job(scene.env())
    assert moved.counts()["merged"] == 1 and twin.deleted_at is None, "the move restored the twin"
    undone = run_job(scene.env(), command="undo")
    assert undone.counts()["undone"] == 1, undone.report["outcomes"]
    assert_as_before(scene, before)


@pytest.mark.parametrize("cover_of", ["twin", "both"])
def test_a_cover_goes_back_to_the_path_twin_that_is_in_the_album(cover_of, scene, run_job):
    """Overlapping libraries: the same file is an asset of /photos and of /photos/2020, moved as one unit.
    An album holding only the second one (its cover) gets its cover back from the copy: to that asset,
    which is in the album, not to the first (Immich refuses a cover that is not in the album)."""
    everything, year = scene.library("photos", paths=["/mnt/photos"]), scene.library("2020", paths=["/mnt/photos/2020"])
    photo = scene.photo(everything, "2020/a.jpg")
    twin = scene.scan(year)[0]
    scene.album("From 2020", twin, cover=twin)
    if cover_of == "both":
        scene.album("Both", photo, twin, cover=photo)
    before = state(scene)
    env = scene.env(EXT2INT_LIBRARY_IDS=f"{everything.id},{year.id}")
    moved = run_job(env)
    assert moved.code == 0 and moved.counts()["uploaded"] == 1, moved.report["outcomes"]
    undone = run_job(env, command="undo")
    assert undone.code == 0 and undone.counts()["undone"] == 1, undone.report["outcomes"]
    assert_as_before(scene, before)


def test_the_same_bytes_at_two_paths_come_back_and_their_copy_goes(scene, run_job):
    """dup/a.jpg and dup/b.jpg hold the same bytes: the first's move makes the copy, the second's merges
    into it. The copy stays the job's own ('created' is kept by the second move), so an undo of both
    brings both back as they were and puts the copy in the trash (the long undo property's old gap)."""
    lib = scene.library()
    data = content(scene.next_seed())
    first = scene.photo(lib, "dup/a.jpg", data=data)
    scene.photo(lib, "dup/b.jpg", data=data)
    scene.album("A", first, cover=first)
    before = state(scene)
    moved = run_job(scene.env()).counts()
    assert (moved["uploaded"], moved["merged"]) == (1, 1), moved
    undone = run_job(scene.env(), command="undo")
    assert undone.code == 0 and undone.counts()["undone"] == 1 and not undone.outcomes("held"), undone.report["outcomes"]
    assert_as_before(scene, before)


def test_undoing_one_run_of_two_paths_keeps_the_copy_the_other_still_needs(scene, run_job):
    """The two paths moved by two runs; undoing only the second brings its external asset back and takes
    it out of the copy's provenance; the copy stays, for the first path's move, which still stands."""
    lib = scene.library()
    data = content(scene.next_seed())
    scene.photo(lib, "dup/a.jpg", data=data)
    scene.photo(lib, "dup/b.jpg", data=data)
    env = scene.env(EXT2INT_BATCH_SIZE="1", EXT2INT_CONCURRENCY="1")
    first, second = run_job(env), run_job(env)
    assert (first.counts()["uploaded"], second.counts()["merged"]) == (1, 1), (first.report, second.report)
    target = scene.world.assets[first.outcomes("uploaded")[0]["target_id"]]
    back = second.outcomes("merged")[0]["asset_id"]
    undone = run_job(scene.env(EXT2INT_RUN_ID=second.report["run"]), command="undo")
    assert undone.code == 0 and undone.counts()["undone"] == 1, undone.report["outcomes"]
    assert target.deleted_at is None, "the first path's move still stands on it"
    assert scene.world.assets[back].deleted_at is None, "the second path's external asset is back"
    marker = target.metadata["immich-ext2int"][0]
    assert [e["source"] for e in marker["sources"]] == [first.outcomes("uploaded")[0]["asset_id"]]
    assert marker["created"] is True

"""Limits per run, back-pressure from Immich's queues, and the account of every listed asset."""

from __future__ import annotations

import itertools

from tests.clock import Jumping, Later
from tests.invariant import check, snapshot


def photos(scene, count: int, size: int = 4096):
    lib = scene.library()
    for i in range(count):
        scene.photo(lib, f"p{i:02}.jpg", size=size)
    return lib


def test_batch_size_limits_the_assets_moved_per_run(scene, run_job):
    lib = photos(scene, 5)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    result = run_job(scene.env(EXT2INT_BATCH_SIZE="2"))
    assert result.code == 0 and result.counts()["uploaded"] == 2
    assert result.report["stoppedBecause"] == "EXT2INT_BATCH_SIZE (2) reached"
    assert result.report["remaining"] == {lib.id: 3}
    check(scene.world, snap, require_done=False)
    for _ in range(2):
        assert run_job(scene.env(EXT2INT_BATCH_SIZE="2")).code == 0
    check(scene.world, snap)


def test_the_benchmarks_search_cache_never_serves_a_stale_listing(scene, run_job):
    # bench/fake_bench.py turns this cache on; its numbers are only worth something if runs behave the same
    scene.world.cache_searches = True
    lib = photos(scene, 5)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    for moved in (2, 2, 1):
        result = run_job(scene.env(EXT2INT_BATCH_SIZE="2"))
        assert result.code == 0 and result.counts()["uploaded"] == moved, result.report["counts"]
    assert run_job(scene.env()).report["listed"] == 0
    check(scene.world, snap)


def test_skipped_assets_do_not_use_up_the_batch(scene, run_job):
    lib = photos(scene, 3)
    for asset in list(scene.world.assets.values())[:2]:
        asset.is_offline = True
    scene.photo(lib, "z.jpg")
    result = run_job(scene.env(EXT2INT_BATCH_SIZE="2"))
    assert result.counts()["uploaded"] == 2 and result.counts()["skipped"] == 2


def test_skipped_assets_do_not_widen_the_batch_either(scene, run_job):
    lib = photos(scene, 8)
    for asset in list(scene.world.assets.values())[:3]:
        asset.is_offline = True  # skipped from the listing alone, before any unit is taken
    for concurrency in ("1", "4"):
        result = run_job(scene.env(EXT2INT_BATCH_SIZE="2", EXT2INT_CONCURRENCY=concurrency))
        assert result.counts()["uploaded"] == 2, (concurrency, result.report["counts"])
    assert result.report["remaining"] == {lib.id: 4}, "the offline three stay, one is left to move"


def test_max_bytes_is_a_soft_limit(scene, run_job):
    photos(scene, 5, size=100_000)
    result = run_job(scene.env(EXT2INT_MAX_BYTES="250kB", EXT2INT_CONCURRENCY="1"))
    assert result.counts()["uploaded"] == 3, "the unit that crosses the limit finishes; no new one starts"
    assert result.report["bytesMoved"] == 300_000
    assert "EXT2INT_MAX_BYTES" in result.report["stoppedBecause"]


def test_max_duration_stops_taking_new_assets(fake, scene, run_job):
    lib = photos(scene, 6)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    clock = Later()
    fake.faults.add("notify", method="GET", route="/assets/{id}/original", times=0)
    fake.on_notify = lambda: clock.advance(0.4)  # each download takes 0.4 s of the job's time
    result = run_job(scene.env(EXT2INT_MAX_DURATION="1", EXT2INT_CONCURRENCY="1"), clock=clock)
    assert result.code == 0
    assert 1 <= result.counts()["uploaded"] < 6
    assert "EXT2INT_MAX_DURATION" in result.report["stoppedBecause"]
    check(scene.world, snap, require_done=False)


def test_concurrency_moves_several_assets_at_once(fake, scene, run_job):
    lib = photos(scene, 6)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    # the first unit goes through alone (until a first delete worked); the next three must meet in flight
    together = fake.faults.add("meet", method="GET", route="/assets/{id}/original", nth=2, times=3, count=3)
    result = run_job(scene.env(EXT2INT_CONCURRENCY="3"))
    assert result.code == 0 and result.counts()["uploaded"] == 6
    assert together.met, "three downloads were under way together"
    check(scene.world, snap)


def test_full_queues_pause_the_run_until_they_drain(fake, scene, run_job):
    lib = photos(scene, 3)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    readings = itertools.chain([5000, 5000, 5000], itertools.repeat(0))
    scene.world.queue_backlog = lambda: {"metadataExtraction": next(readings)}
    clock = Jumping()
    result = run_job(scene.env(EXT2INT_QUEUE_THRESHOLD="100", EXT2INT_QUEUE_POLL="20s"), clock=clock)
    assert result.code == 0 and result.counts()["uploaded"] == 3
    assert result.report["throttledSeconds"] == 60 and clock.waited >= 60, "three pauses of 20 s, taken at once"
    first_upload = fake.requests("POST", "/assets")[0].at
    assert all(q.at < first_upload for q in fake.requests("GET", "/queues")[:3]), "nothing moved while the queues were full"
    check(scene.world, snap)


def test_full_queues_end_the_run_early_when_asked(scene, run_job):
    photos(scene, 2)
    scene.world.queue_backlog = 5000
    result = run_job(scene.env(EXT2INT_QUEUE_THRESHOLD="100", EXT2INT_QUEUE_ACTION="stop"))
    assert result.code == 0 and result.counts()["uploaded"] == 0
    assert "5000 jobs" in result.report["stoppedBecause"]


def test_queues_that_never_drain_end_the_run_after_the_longest_pause(scene, run_job):
    photos(scene, 2)
    scene.world.queue_backlog = 5000
    result = run_job(scene.env(EXT2INT_QUEUE_THRESHOLD="100", EXT2INT_QUEUE_POLL="1m", EXT2INT_QUEUE_MAX_PAUSE="10m"),
                     clock=Jumping())
    assert result.counts()["uploaded"] == 0 and "stayed above 100 jobs for 600s" in result.report["stoppedBecause"]


def test_a_key_that_cannot_read_queues_runs_without_back_pressure(fake, scene, run_job):
    other_lib = scene.library("theirs", owner=scene.other)
    scene.photo(other_lib, "x.jpg")
    scene.world.queue_backlog = 5000
    result = run_job(scene.env(scene.other_key, EXT2INT_QUEUE_THRESHOLD="100", EXT2INT_ASSUME_UNSHARED="true"))
    assert result.code == 0 and result.counts()["uploaded"] == 1
    assert any("back-pressure off" in n for n in result.report["notes"])


def test_every_listed_asset_ends_in_exactly_one_outcome(fake, scene, run_job):
    lib = photos(scene, 4)
    scene.live(lib, "l")
    offline = scene.photo(lib, "off.jpg")
    offline.is_offline = True
    fake.faults.add("status", method="GET", route="/assets/{id}/original", status=500, times=0, nth=2)
    result = run_job(scene.env(EXT2INT_CONCURRENCY="1", EXT2INT_HTTP_RETRIES="0", EXT2INT_TRANSFER_RETRIES="0"))
    outcomes = result.outcomes()
    assert len({o["asset_id"] for o in outcomes}) == len(outcomes)
    assert sum(o["assets"] for o in outcomes) == result.report["listed"] == 7
    assert result.code == 1 and result.counts()["failed"] >= 1

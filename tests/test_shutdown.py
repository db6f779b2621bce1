"""SIGTERM and SIGINT sent to the real job: finish what is in flight, take nothing new, exit cleanly;
a second signal exits at once. Either way the next run completes the work."""

from __future__ import annotations

import json
import os
import signal
import time

from tests.clock import Later
from tests.conftest import CLAIMS_EXPIRED, spawn_job
from tests.invariant import check, snapshot


def setup_world(fake, scene, count=5, delay=0.3):
    lib = scene.library()
    for i in range(count):
        scene.photo(lib, f"p{i}.jpg")
    fake.faults.add("delay", method="GET", route="/assets/{id}/original", seconds=delay, times=0)
    return lib


def test_sigterm_finishes_the_asset_in_flight_and_takes_no_new_one(fake, scene, run_job, tmp_path):
    lib = setup_world(fake, scene)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    report = tmp_path / "report.json"
    proc = spawn_job(scene.env(EXT2INT_CONCURRENCY="1", EXT2INT_REPORT=str(report)))
    fake.faults.add("notify", method="GET", route="/assets/{id}/original", nth=2)
    fake.on_notify = lambda: os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    data = json.loads(report.read_text())
    assert data["counts"]["uploaded"] == 2, "the second asset was in flight: it finished; no third started"
    assert data["stoppedBecause"] == "stopped by SIGTERM"
    assert len(fake.requests("GET", "/assets/{id}/original")) == 2
    assert "SIGTERM: finishing the assets in flight" in err
    check(scene.world, snap, require_done=False)
    fake.faults.clear()
    assert run_job(scene.env()).code == 0
    check(scene.world, snap)


def test_sigint_behaves_like_sigterm(fake, scene):
    setup_world(fake, scene, count=3)
    proc = spawn_job(scene.env(EXT2INT_CONCURRENCY="1"))
    fake.faults.add("notify", method="GET", route="/assets/{id}/original", nth=1)
    fake.on_notify = lambda: os.kill(proc.pid, signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert len(fake.requests("POST", "/assets")) == 1


def test_a_second_signal_exits_at_once_and_the_next_run_completes(fake, scene, run_job):
    lib = setup_world(fake, scene, count=2, delay=5)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    proc = spawn_job(scene.env(EXT2INT_CONCURRENCY="1"))

    def twice() -> None:
        os.kill(proc.pid, signal.SIGTERM)
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGTERM)

    fake.faults.add("notify", method="GET", route="/assets/{id}/original", nth=1)
    fake.on_notify = twice
    started = time.monotonic()
    proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert time.monotonic() - started < 4, "did not wait for the 5 s download"
    check(scene.world, snap, require_done=False)
    fake.faults.clear()
    assert run_job(scene.env(), clock=Later(CLAIMS_EXPIRED)).code == 0  # the cut-off unit's claim has expired
    check(scene.world, snap)


def test_the_grace_period_bounds_the_wait_for_a_slow_asset(fake, scene, run_job, tmp_path):
    lib = setup_world(fake, scene, count=2, delay=6)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    report = tmp_path / "report.json"
    proc = spawn_job(scene.env(EXT2INT_CONCURRENCY="1", EXT2INT_SHUTDOWN_GRACE="1", EXT2INT_REPORT=str(report)))
    fake.faults.add("notify", method="GET", route="/assets/{id}/original", nth=1)
    fake.on_notify = lambda: os.kill(proc.pid, signal.SIGTERM)
    started = time.monotonic()
    proc.communicate(timeout=60)
    assert time.monotonic() - started < 5
    assert proc.returncode == 1, "an asset cut off by the grace period is reported, as 'incomplete'"
    data = json.loads(report.read_text())
    assert [o["stage"] for o in data["outcomes"]] == ["incomplete"]
    check(scene.world, snap, require_done=False)
    fake.faults.clear()
    assert run_job(scene.env(), clock=Later(CLAIMS_EXPIRED)).code == 0  # the cut-off unit's claim has expired
    check(scene.world, snap)

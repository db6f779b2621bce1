"""SIGTERM and SIGINT sent to the real job: finish what is in flight, take nothing new, exit cleanly;
a second signal exits at once. Either way the next run completes the work.

Driven by events, not durations: the fake holds a download while the signal arrives, and the test
reads the job's own log line saying it saw the signal before it lets the download go on."""

from __future__ import annotations

import json
import os
import signal

from tests.clock import Later
from tests.conftest import CLAIMS_EXPIRED, spawn_job
from tests.invariant import check, snapshot


def setup_world(scene, count=5):
    lib = scene.library()
    for i in range(count):
        scene.photo(lib, f"p{i}.jpg")
    return lib


def signal_when_held(fake, proc, nth: int, signum: int = signal.SIGTERM):
    """Hold the nth download and send the signal as it arrives; returns the held fault."""
    held = fake.faults.add("hold", method="GET", route="/assets/{id}/original", nth=nth)
    fake.faults.add("notify", method="GET", route="/assets/{id}/original", nth=nth)
    fake.on_notify = lambda: os.kill(proc.pid, signum)
    return held


def wait_for_line(proc, text: str) -> list[str]:
    """The job's stderr, line by line, up to the first line holding `text`."""
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"the job ended without logging {text!r}: {''.join(lines)}")


def test_sigterm_finishes_the_asset_in_flight_and_takes_no_new_one(fake, scene, run_job, tmp_path):
    lib = setup_world(scene)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    report = tmp_path / "report.json"
    proc = spawn_job(scene.env(EXT2INT_CONCURRENCY="1", EXT2INT_REPORT=str(report)))
    held = signal_when_held(fake, proc, nth=2)
    wait_for_line(proc, "SIGTERM: finishing the assets in flight")
    held.release()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    data = json.loads(report.read_text())
    assert data["counts"]["uploaded"] == 2, "the second asset was in flight: it finished; no third started"
    assert data["stoppedBecause"] == "stopped by SIGTERM"
    assert len(fake.requests("GET", "/assets/{id}/original")) == 2
    check(scene.world, snap, require_done=False)
    fake.faults.clear()
    assert run_job(scene.env()).code == 0
    check(scene.world, snap)


def test_sigint_behaves_like_sigterm(fake, scene):
    setup_world(scene, count=3)
    proc = spawn_job(scene.env(EXT2INT_CONCURRENCY="1"))
    held = signal_when_held(fake, proc, nth=1, signum=signal.SIGINT)
    wait_for_line(proc, "SIGINT: finishing the assets in flight")
    held.release()
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert len(fake.requests("POST", "/assets")) == 1


def test_a_second_signal_exits_at_once_and_the_next_run_completes(fake, scene, run_job):
    lib = setup_world(scene, count=2)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    proc = spawn_job(scene.env(EXT2INT_CONCURRENCY="1"))
    held = signal_when_held(fake, proc, nth=1)
    try:
        wait_for_line(proc, "SIGTERM: finishing the assets in flight")
        os.kill(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=60)  # the download is still held: only an immediate exit ends the job
        assert proc.returncode == 128 + signal.SIGTERM
    finally:
        held.release()
    check(scene.world, snap, require_done=False)
    fake.faults.clear()
    assert run_job(scene.env(), clock=Later(CLAIMS_EXPIRED)).code == 0  # the cut-off unit's claim has expired
    check(scene.world, snap)


def test_the_grace_period_bounds_the_wait_for_a_slow_asset(fake, scene, run_job, tmp_path):
    lib = setup_world(scene, count=2)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    report = tmp_path / "report.json"
    proc = spawn_job(scene.env(EXT2INT_CONCURRENCY="1", EXT2INT_SHUTDOWN_GRACE="0.5", EXT2INT_REPORT=str(report)))
    held = signal_when_held(fake, proc, nth=1)
    try:
        proc.communicate(timeout=60)  # the download never ends: only the grace period ends the job
    finally:
        held.release()
    assert proc.returncode == 1, "an asset cut off by the grace period is reported, as 'incomplete'"
    data = json.loads(report.read_text())
    assert [o["stage"] for o in data["outcomes"]] == ["incomplete"]
    check(scene.world, snap, require_done=False)
    fake.faults.clear()
    assert run_job(scene.env(), clock=Later(CLAIMS_EXPIRED)).code == 0  # the cut-off unit's claim has expired
    check(scene.world, snap)

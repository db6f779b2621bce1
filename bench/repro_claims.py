"""The long property run's one failing world (test_random_faults_and_kills_never_lose_anything, seen
2026-12-02 on a loaded machine), as a loop of 50. After a fault schedule with two processes, a later run
skipped a unit as "claimed" and run_to_completion stopped there, leaving an asset external (nothing lost):
one case in ten, also at 1d5cdd6. Two causes, both found with this loop: claim.take left its own claims
after giving up (fixed in the job), and a claim write of the dead process, delayed by a fault and applied by
the server after the process had given up on it, met the next run's claim, which backed off as the protocol
wants; the harness took that transient skip for the end (fixed in tests/test_property.py). 50 of 50 pass.

    .venv/bin/python -m pytest -q -p no:randomly bench/repro_claims.py     # about 4 minutes
"""

import os
import signal

import pytest

from tests.clock import Later
from tests.conftest import CLAIMS_EXPIRED, run_job, spawn_job  # noqa: F401 (run_job: the fixture)
from tests.fake_immich import FakeImmich, Scene
from tests.invariant import check, snapshot
from tests.test_property import run_to_completion, with_keys


@pytest.mark.parametrize("attempt", range(50))
def test_the_long_runs_failing_world(attempt, run_job):  # noqa: F811
    fake = FakeImmich().start()
    try:
        scene = Scene(fake)
        lib = scene.library()
        for i in range(4):
            photo = scene.photo(lib, f"p{i}.jpg", size=2000)
            scene.album("A", photo)
            scene.tag(photo, "T")
            if i == 1:
                scene.internal(photo.blob.read_all(), trashed=True)
        scene.live(lib, "l")
        dads = scene.library("Family (Dad)", owner=scene.other, paths=["/mnt/photos/family"])
        scene.album("Ours", scene.photo(lib, "family/kids.jpg", size=60_000))
        scene.favorite(scene.scan(dads)[0])
        libraries = [lib, dads]
        snap = snapshot(scene.world, [library.id for library in libraries])
        for method, route, fault, nth, times in [
                ("POST", "/faces", {"action": "truncate", "after_bytes": 700}, 6, 2),
                ("GET", "/assets/{id}", {"action": "delay", "seconds": 1.5}, 4, 2),
                ("GET", "/assets/{id}", {"action": "status", "status": 502}, 2, 2),
                ("PUT", "/assets/metadata", {"action": "delay", "seconds": 1.5}, 4, 1),
                ("GET", "/assets/{id}/metadata", {"action": "status", "status": 502}, 2, 2)]:
            fake.faults.add(method=method, route=route, nth=nth, times=times, **fault)
        fake.faults.add("kill_mid_body", method="PUT", route="/stacks/{id}", nth=3, after_bytes=900)
        env = with_keys(scene, libraries, EXT2INT_HTTP_TIMEOUT="1", EXT2INT_HTTP_RETRIES="2", EXT2INT_SETTLE_TIMEOUT="2",
                        EXT2INT_CONCURRENCY="2")
        proc, second = spawn_job(env), spawn_job(env)
        fake.on_kill = lambda: (os.kill(proc.pid, signal.SIGKILL), proc.wait())
        proc.communicate(timeout=120)
        second.communicate(timeout=120)
        check(scene.world, snap, require_done=False)
        fake.faults.clear()
        fake.on_kill = None
        held = run_to_completion(scene, run_job, env, clock=Later(CLAIMS_EXPIRED))
        check(scene.world, snap, held=held)
    finally:
        fake.stop()

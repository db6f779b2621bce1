"""Trust after the move, on a real Immich 3.1.0: `verify` proves a migrated library and names a
deliberately altered asset; `undo` of the run returns the external and the internal library to their
state before it (every field read back through the API), also when killed half-way and run again."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.clock import Later
from tests.conftest import CLAIMS_EXPIRED
from tests.e2e.immich import sha1_b64
from tests.e2e.records import Contents, curated
from tests.e2e.test_real_immich import build_curated_world, finish, job

pytestmark = pytest.mark.e2e


def snapshot(admin, world, contents) -> dict:
    """Every external asset's curation and trash state, and every internal asset holding one of the
    world's files (the phone's twins), by id."""
    out = {}
    for name, asset in world.assets.items():
        out[asset["id"]] = (admin.asset(asset["id"])["isTrashed"], curated(admin, asset["id"], contents))
    for name, data in world.files.items():
        for twin in admin.by_checksum(sha1_b64(data)):
            if twin["libraryId"] is None:
                out[twin["id"]] = (twin["isTrashed"], curated(admin, twin["id"], contents))
    return out


def test_verify_proves_a_moved_library_and_undo_takes_the_run_back_even_when_killed(e2e, tmp_path, run_job):
    admin = e2e.admin
    world, _ = build_curated_world(e2e, tmp_path)
    disk = {str(world.folder / name): sha1_b64(data) for name, data in world.files.items()}
    contents = Contents(admin, disk)
    before = snapshot(admin, world, contents)

    code, out, err = finish(job(e2e, world, report=tmp_path / "run.json"))
    run = json.loads((tmp_path / "run.json").read_text())
    assert code == 0 and run["counts"]["failed"] == 0 and run["counts"]["held"] == 0, err
    admin.wait_idle()

    # verify: every copy holds (its bytes hashed again), then one altered on purpose is named
    code, out, err = finish(job(e2e, world, "verify", report=tmp_path / "verify.json", EXT2INT_VERIFY_HASH="all"))
    audit = json.loads((tmp_path / "verify.json").read_text())
    assert code == 0, err
    assert audit["counts"]["verified"] == 11 and audit["counts"]["changed"] == 0, [(o["path"], o["reason"], o["differences"]) for o in audit["outcomes"] if o["kind"] != "verified"]
    assert audit["requests"]["mutating"] == 0
    altered = next(o["target_id"] for o in run["outcomes"] if o["path"].endswith("p01.jpg"))
    admin.call("PUT", "/assets", json={"ids": [altered], "description": "changed my mind"})
    admin.wait_idle()
    code, out, err = finish(job(e2e, world, "verify", report=tmp_path / "verify2.json"))
    audit = json.loads((tmp_path / "verify2.json").read_text())
    assert code == 0, err
    changed, = [o for o in audit["outcomes"] if o["kind"] == "changed"]
    assert changed["asset_id"] == altered and any("description" in d for d in changed["differences"])
    admin.call("PUT", "/assets", json={"ids": [altered], "description": "Cliffs at dawn"})  # back as it was moved
    admin.wait_idle()

    # undo-plan changes nothing
    code, out, err = finish(job(e2e, world, "undo-plan", report=tmp_path / "undo-plan.json", EXT2INT_RUN_ID=run["run"]))
    preview = json.loads((tmp_path / "undo-plan.json").read_text())
    assert code == 0 and preview["requests"]["mutating"] == 0, err
    assert preview["counts"]["planned"] == 11, [(o["path"], o["kind"], o["stage"], o["reason"], o["differences"])
                                                for o in preview["outcomes"] if o["kind"] != "planned"]

    # undo, killed half-way (once the first external asset is back), then run again
    proc = job(e2e, world, "undo", EXT2INT_RUN_ID=run["run"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if any(not a["isTrashed"] for a in admin.search(libraryId=world.library["id"], withDeleted=True)):
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # run again once the dead run's claims have expired (the job's clock seam: its claims last 30 minutes)
    second = run_job({"IMMICH_URL": e2e.url, "IMMICH_API_KEY": world.api.key, "EXT2INT_LIBRARY_IDS": world.library["id"],
                     "EXT2INT_LOG_FORMAT": "json", "EXT2INT_RUN_ID": run["run"]}, "undo", clock=Later(CLAIMS_EXPIRED))
    undone = second.report
    assert second.code == 0, second.stderr + json.dumps(undone["outcomes"])
    admin.wait_idle()

    after = snapshot(admin, world, contents)
    for asset_id, (trashed, record) in before.items():
        assert after[asset_id][0] == trashed, f"{asset_id}: trashed {trashed} before, {after[asset_id][0]} after"
        assert after[asset_id][1] == record, f"{asset_id}:\n{record}\nbefore, now\n{after[asset_id][1]}"
    live_before = {i for i, (trashed, _) in before.items() if not trashed}
    for name, data in world.files.items():  # what the move uploaded is in the trash
        live = {t["id"] for t in admin.by_checksum(sha1_b64(data)) if t["libraryId"] is None and not t["isTrashed"]}
        assert live <= live_before, (f"{name}: an internal copy the move made is still live; the undo said: "
                                     f"{[o for o in undone['outcomes'] if o['path'].endswith(name)]}")

    # the next run leaves what was undone
    code, out, err = finish(job(e2e, world, report=tmp_path / "again.json"))
    again = json.loads((tmp_path / "again.json").read_text())
    assert code == 0 and again["counts"]["uploaded"] == again["counts"]["merged"] == 0, err

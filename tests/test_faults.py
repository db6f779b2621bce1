"""Faults the fake server injects: what the client retries, what it must not, and what a broken
transfer can never turn into."""

from __future__ import annotations

import base64
import http.server
import threading

import pytest

from job.immich import errors
from job.immich.client import ImmichClient
from job.immich.endpoints import ENDPOINTS, retry_safe
from job.immich.http import RETRY_AFTER_CAP, CappedRetry, Transport
from tests.invariant import check, snapshot


@pytest.fixture
def client(fake, scene):
    transport = Transport(fake.url, scene.key, timeout=0.3, retries=3, pool_size=4)
    yield ImmichClient(transport)
    transport.close()


@pytest.mark.parametrize("fault", [
    dict(action="status", status=503),
    dict(action="status", status=502),
    dict(action="status", status=504),
    dict(action="status", status=429, retry_after=0),
    dict(action="drop"),
    dict(action="delay", seconds=0.6),  # longer than the 0.3 s read timeout (real time: a socket times out)
    dict(action="truncate", after_bytes=10),  # the answer breaks off
    dict(action="wrong_length", delta=-5),  # the body ends inside the JSON
    dict(action="wrong_length", delta=50),  # the connection ends before the announced length
])
def test_idempotent_reads_are_retried_through_transient_faults(fault, fake, client):
    fake.faults.add(method="GET", route="/users/me", times=2, **fault)
    assert client.me().email == "admin@example.com"
    assert len(fake.requests("GET", "/users/me")) == 3


def test_a_server_error_that_persists_is_reported_with_the_call(fake, client):
    fake.faults.add("status", method="GET", route="/users/me", status=500, times=0)
    with pytest.raises(errors.ServerError) as caught:
        client.me()
    assert "GET /api/users/me" in str(caught.value) and "500" in str(caught.value)
    assert len(fake.requests("GET", "/users/me")) == 1, "500 is not a transient status: no retry"


def test_retry_after_is_honoured_but_capped():
    assert CappedRetry().parse_retry_after("2") == 2
    assert CappedRetry().parse_retry_after("86400") == RETRY_AFTER_CAP


def test_only_calls_safe_to_repeat_are_retried():
    assert retry_safe("GET", "/api/assets/x") and retry_safe("DELETE", "/api/assets")
    assert retry_safe("POST", "/api/search/metadata") and retry_safe("PUT", "/api/assets")
    assert not retry_safe("PUT", "/api/assets/copy"), "a repeated stack copy dissolves the stack"
    assert not retry_safe("POST", "/api/assets"), "the upload body is a one-shot stream"
    assert not retry_safe("POST", "/api/faces") and not retry_safe("POST", "/api/stacks")


def test_each_request_carries_the_key_and_the_urls_password_and_asks_for_no_compression_and_no_cookie():
    """The transport prepares its requests itself (not through a requests.Session): what a Session added
    that the job relies on must still be there (a user and password in IMMICH_URL become Basic auth), and
    what it added that the job does not want must not (gzip answers, cookies sent back)."""
    seen: list[dict[str, str]] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            seen.append({k.lower(): v for k, v in self.headers.items()})
            body = b'{"major": 3, "minor": 1, "patch": 0}' * 100  # over compression's 1 KB threshold
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Set-Cookie", "immich_session=abc; Path=/")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    transport = Transport(f"http://ext2int:p%40ss@127.0.0.1:{server.server_address[1]}", "KEY-1", timeout=5,
                          retries=0, pool_size=2)
    try:
        for _ in range(2):
            response = transport.request(ENDPOINTS["server_version"])
            assert response.content.startswith(b'{"major": 3')
    finally:
        transport.close()
        server.shutdown()
        server.server_close()
    assert len(seen) == 2
    for headers in seen:
        assert headers["x-api-key"] == "KEY-1"
        assert headers["authorization"] == "Basic " + base64.b64encode(b"ext2int:p@ss").decode()
        assert headers["accept-encoding"] == "identity"
        assert "cookie" not in headers, "a cookie Immich set is never sent back: the key is the only credential"
    assert transport.by_route()["GET /api/server/version"]["count"] == 2


def test_a_lost_copy_answer_is_not_repeated_blindly_and_the_stack_survives(fake, scene, run_job):
    lib = scene.library()
    first, second = scene.photo(lib, "s1.jpg"), scene.photo(lib, "s2.jpg")
    scene.stack(first, second)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    fake.faults.add("drop_after", method="PUT", route="/assets/copy")

    result = run_job(scene.env(EXT2INT_CONCURRENCY="1"))

    assert len([e for e in fake.requests("PUT", "/assets/copy")]) >= 1
    assert result.code == 1 and result.outcomes("failed")[0]["stage"] == "carry"
    check(scene.world, snap, require_done=False)
    assert run_job(scene.env()).code == 0
    check(scene.world, snap)
    assert len({a.stack_id for a in scene.world.assets.values() if a.internal}) == 1


@pytest.mark.parametrize("fault", [
    dict(action="truncate", after_bytes=1000),
    dict(action="wrong_length", delta=-100),  # announces less than it sends
    dict(action="wrong_length", delta=+100),  # announces more than it sends
    dict(action="drop"),
    dict(action="status", status=503),
])
def test_a_broken_download_is_retried_and_never_becomes_an_asset(fault, fake, scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg", size=200_000)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    fake.faults.add(method="GET", route="/assets/{id}/original", **fault)

    result = run_job(scene.env())

    assert result.code == 0, result.stderr
    check(scene.world, snap)
    internal = [a for a in scene.world.assets.values() if a.internal]
    assert len(internal) == 1 and internal[0].blob.sha1 == photo.blob.sha1
    assert len(fake.requests("GET", "/assets/{id}/original")) == 2


def test_a_download_that_always_breaks_fails_the_asset_and_deletes_nothing(fake, scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg", size=100_000)
    fake.faults.add("truncate", method="GET", route="/assets/{id}/original", after_bytes=500, times=0)
    result = run_job(scene.env(EXT2INT_TRANSFER_RETRIES="2"))
    assert result.code == 1
    failed = result.outcomes("failed")
    assert failed[0]["stage"] == "download" and "after 500 bytes" in failed[0]["reason"]
    assert len(fake.requests("GET", "/assets/{id}/original")) == 3, "retried, then given up"
    assert photo.deleted_at is None and not [a for a in scene.world.assets.values() if a.internal]


def test_an_upload_answer_lost_after_the_server_stored_it_is_resolved_by_dedup(fake, scene, run_job):
    lib = scene.library()
    scene.photo(lib, "a.jpg")
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    fake.faults.add("drop_after", method="POST", route="/assets")
    result = run_job(scene.env())
    assert result.code == 0, result.stderr
    check(scene.world, snap)
    assert result.counts()["uploaded"] == 1, "the duplicate answer names the asset this run created"


def test_a_lost_face_creation_answer_does_not_create_the_face_twice(fake, scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    scene.face(photo, scene.person("Alice"))
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    fake.faults.add("drop_after", method="POST", route="/faces")
    first = run_job(scene.env())
    assert first.code == 1
    assert run_job(scene.env()).code == 0
    check(scene.world, snap)
    twin = next(a for a in scene.world.assets.values() if a.internal)
    assert len([f for f in scene.world.faces.values() if f.asset_id == twin.id]) == 1


def test_slow_downloads_still_complete(fake, scene, run_job):
    lib = scene.library()
    scene.photo(lib, "a.jpg", size=64 * 1024)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    fake.faults.add("slow", method="GET", route="/assets/{id}/original", seconds=0.01)
    assert run_job(scene.env()).code == 0
    check(scene.world, snap)


def test_a_listing_that_fails_mid_run_ends_the_run_with_a_report_and_code_3(fake, scene, run_job):
    lib = scene.library()
    for i in range(3):
        scene.photo(lib, f"p{i}.jpg")
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    # The first listing page answers; every search after it fails (500 is not retried).
    fake.faults.add("status", method="POST", route="/search/metadata", status=500, nth=2, times=0)
    first = run_job(scene.env(EXT2INT_CONCURRENCY="1"))
    assert first.code == 3, first.stderr
    assert first.report is not None, "the report of what was done is still written"
    assert "Immich failed a call the whole run depends on" in first.report["stoppedBecause"]
    assert "POST /api/search/metadata" in first.report["stoppedBecause"] and "500" in first.report["stoppedBecause"]
    assert "Immich failed" in first.stderr
    # nothing lost: the units in flight either finished or left their source (the gate searches too: a unit
    # whose search failed there kept its source)
    check(scene.world, snap, require_done=False)
    fake.faults.clear()
    second = run_job(scene.env())
    assert second.code == 0, second.stderr
    assert first.report["assetsMoved"] + second.report["assetsMoved"] == 3
    check(scene.world, snap)
    assert not [a for a in scene.world.assets.values() if a.library_id == lib.id and a.deleted_at is None]


def live_claims(scene) -> dict[str, str]:
    """Asset path -> the run holding a claim on it that has not expired (as another run would see it)."""
    import time

    from job.journal import CLAIM_KEY, Claim

    with scene.world.lock:
        found = {a.original_path: Claim.of(a.metadata[CLAIM_KEY][0]) for a in scene.world.assets.values()
                 if CLAIM_KEY in a.metadata}
    return {path: c.run for path, c in found.items() if c is not None and c.until > time.time()}


def test_a_failed_delete_lets_go_of_its_claims_at_once(fake, scene, run_job):
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    fake.faults.add("status", method="DELETE", route="/assets", status=500, times=0)
    result = run_job(scene.env())
    assert result.code == 1 and result.outcomes("failed")[0]["stage"] == "delete"
    assert photo.deleted_at is None and live_claims(scene) == {}, "the next run takes it at once"


def test_claims_that_immich_did_not_take_back_are_released_on_the_runs_way_out(fake, scene, run_job):
    """Immich failed the release when the unit ended (a restart, a hiccup): the run tries once more as it
    ends, instead of leaving the asset to wait EXT2INT_CLAIM_TTL."""
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    fake.faults.add("status", method="DELETE", route="/assets", status=500, times=0)
    releases = len(fake.requests("PUT", "/assets/metadata"))
    traced = run_job(scene.env())  # the failed delete's release is this run's last key/value write
    assert traced.code == 1
    last = len(fake.requests("PUT", "/assets/metadata")) - releases
    scene.world.assets[photo.id].metadata.clear()  # as before that run
    fake.clear_log()
    fake.faults.add("status", method="PUT", route="/assets/metadata", status=500, nth=last, times=1)

    result = run_job(scene.env())

    assert result.code == 1 and photo.deleted_at is None
    assert live_claims(scene) == {}, "released on the way out"
    assert not any("keep their claim" in n for n in result.report["notes"])
    assert [r.status for r in fake.requests("PUT", "/assets/metadata")][-2:] == [500, 200]


def test_a_new_asset_immich_never_reads_is_asked_to_be_read_and_nothing_waits_for_ever(fake, scene, run_job):
    """An upload cut short by Immich restarting leaves an asset whose metadata job was lost: Immich never
    reads it by itself. The job asks Immich to read it again, and the move completes."""
    from tests.clock import Jumping

    lib = scene.library()
    scene.album("Kept", scene.photo(lib, "a.jpg"))  # no sidecar: no copied sidecar makes Immich read it either
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    scene.world.extraction_delay = 10 ** 9  # the extraction of every new asset was lost
    result = run_job(scene.env(EXT2INT_SETTLE_TIMEOUT="60"), clock=Jumping())
    assert result.code == 0 and result.counts()["uploaded"] == 1, result.report["outcomes"]
    assert len(fake.requests("POST", "/assets/jobs")) == 1
    check(scene.world, snap)


def test_without_job_create_the_job_says_how_to_read_the_asset_and_waits(fake, scene, run_job):
    from job.immich.endpoints import ENDPOINTS, Need, required_permissions
    from tests.clock import Jumping

    lib = scene.library()
    scene.photo(lib, "a.jpg")
    needed = sorted(required_permissions("run", (3, 1, 0), copy=True, edits=True, delete=True))
    assert "job.create" not in needed and ENDPOINTS["asset_jobs"].need is Need.OPTIONAL
    key = scene.world.add_key(scene.admin, needed + ["library.read", "asset.statistics"])
    scene.world.extraction_delay = 10 ** 9
    result = run_job(scene.env(key, EXT2INT_SETTLE_TIMEOUT="60"), clock=Jumping())
    assert result.code == 0 and result.counts()["waiting"] == 1
    assert "asked to again" in result.outcomes("waiting")[0]["reason"]
    assert "job.create" in result.stderr and "Refresh metadata" in result.stderr


def test_a_claim_too_slow_to_prove_waits_and_gives_its_claims_back(fake, scene, run_job):
    """Every claim write slower than two thirds of EXT2INT_CLAIM_WAIT: no proof, so the unit waits (it
    is not 'claimed by another run'), and the claims it wrote are given back at once: the next run moves
    it, without waiting EXT2INT_CLAIM_TTL (found by the long property run on a loaded machine)."""
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    fake.faults.add(method="PUT", route="/assets/metadata", nth=1, times=3, action="delay", seconds=0.5)

    first = run_job(scene.env())

    assert [(o["path"], o["kind"]) for o in first.outcomes()] == [(photo.original_path, "waiting")]
    assert "too slowly to claim it safely" in first.outcomes("waiting")[0]["reason"]
    second = run_job(scene.env())  # the same moment: no claim of the first run stands in the way
    assert second.counts()["uploaded"] == 1, second.stderr


def test_an_upload_cut_by_immich_restarting_is_known_for_the_jobs_own_copy(fake, scene, run_job):
    """Immich restarts in the middle of the upload: the asset row stays, its provenance and metadata job are
    lost, and the answer never comes. The upload intent written with the claim says the copy is the job's
    own (not "a twin that existed before"): the retried upload's "duplicate" is recognised, Immich is asked
    to read it before anything joins it, and the move completes as an upload the job made."""
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    scene.album("Kept", photo)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    scene.world.restarts_in_upload = 1
    result = run_job(scene.env())
    assert result.code == 0 and result.counts()["uploaded"] == 1, result.report["outcomes"]
    target = scene.world.assets[result.outcomes("uploaded")[0]["target_id"]]
    marker = target.metadata["immich-ext2int"][0]
    assert marker["created"] is True and [e["source"] for e in marker["sources"]] == [photo.id]
    assert len(fake.requests("POST", "/assets/jobs")) == 1, "asked to read at once"
    check(scene.world, snap)


def test_a_half_made_copy_is_finished_by_the_next_run_and_joins_no_album_unread(fake, scene, run_job):
    """The run gives up on the cut upload (no retries left): its half-made copy is in no album. Immich
    cannot be asked to read it (no job.create): the next run waits on it without adding it to the album,
    and says why; once a user refreshes it in Immich, the run after finishes the move as the job's own."""
    from job.immich.endpoints import required_permissions
    from tests.clock import Jumping

    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    album = scene.album("Kept", photo)
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    scene.world.restarts_in_upload = 1
    cut = run_job(scene.env(EXT2INT_TRANSFER_RETRIES="0"))
    assert cut.counts()["failed"] == 1, cut.report["outcomes"]
    [half] = [a for a in scene.world.assets.values() if a.internal]
    assert half.id not in album.asset_ids and "immich-ext2int" not in half.metadata
    intent = photo.metadata["immich-ext2int"][0]
    assert intent["state"] == "uploading" and intent["run"] == cut.report["run"]

    needed = sorted(required_permissions("run", (3, 1, 0), copy=True, edits=True, delete=True))
    key = scene.world.add_key(scene.admin, needed + ["library.read", "asset.statistics"])
    waits = run_job(scene.env(key, EXT2INT_SETTLE_TIMEOUT="60"), clock=Jumping())
    assert waits.code == 0 and waits.counts()["waiting"] == 1, waits.report["outcomes"]
    assert "earlier attempt" in waits.outcomes("waiting")[0]["reason"]
    assert half.id not in album.asset_ids, "nothing joins a copy Immich has not read"

    scene.world.extract(half)  # the user's "Refresh metadata" in Immich
    done = run_job(scene.env())
    assert done.code == 0 and done.counts()["uploaded"] == 1, done.report["outcomes"]
    assert half.metadata["immich-ext2int"][0]["created"] is True
    check(scene.world, snap)


def _beside(steps):
    """The test's own steps in a thread beside the run (the job takes signals: it runs in the main one)."""
    import threading

    failed: list[BaseException] = []

    def body():
        try:
            steps()
        except BaseException as exc:  # noqa: BLE001 - shown by the test
            failed.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    return thread, failed

def _until(condition, what: str) -> None:
    """Wait for an event of the run (a request landing), not for a duration."""
    import time

    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def _claim_writes(fake) -> int:
    return len([r for r in fake.requests("PUT", "/assets/metadata") if r.status == 200])


def _while_a_download_is_held(fake, scene, run_job, during):
    """One photo, whose download the fake holds while `during(clock)` moves the run's time on, beside the
    run; then the download goes on. The run's result, the world's snapshot, and the run's clock."""
    from tests.clock import Later

    lib = scene.library()
    scene.photo(lib, "a.jpg")
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    held = fake.faults.add("hold", method="GET", route="/assets/{id}/original", nth=1)
    clock = Later()

    def steps():
        try:
            _until(lambda: fake.requests("GET", "/assets/{id}/original"), "the download")
            during(clock)
        finally:
            held.release()

    thread, failed = _beside(steps)
    result = run_job(scene.env(), clock=clock)
    thread.join(60)
    assert not failed, failed
    return result, snap, clock


def test_a_unit_in_flight_longer_than_its_claim_renews_it_and_moves(fake, scene, run_job):
    """Claims last EXT2INT_CLAIM_TTL (2 minutes) so that a dead run's units are free in minutes; a live
    run renews the claims of its units in flight. A download held for 160 s of the run's time (longer
    than the claim) still ends in a move, after one renewal per 40 s (one request each)."""

    def during(clock):
        for _ in range(4):
            writes = _claim_writes(fake)
            clock.advance(40)
            _until(lambda: _claim_writes(fake) > writes, "a renewal")

    result, snap, _ = _while_a_download_is_held(fake, scene, run_job, during)
    assert result.code == 0 and result.counts()["uploaded"] == 1, result.report["outcomes"]
    assert result.report["requests"]["claimRenewals"] == 4
    check(scene.world, snap)


def test_a_renewal_immich_answers_too_late_does_not_count(fake, scene, run_job):
    """A renewal counts only when Immich answered it while the claim it renews still had more than its
    margin left (else it may have landed after another run took the asset). Here its answer comes when
    20 s of the claim are left (the margin is 30 s): the asset shows the renewed claim, but the run goes
    by the old one, and its gate leaves the source alone; the next run finishes the move."""
    from tests.clock import Later

    def during(clock):
        writes = _claim_writes(fake)
        fake.faults.add("notify", method="PUT", route="/assets/metadata", nth=1)
        fake.on_notify = lambda: clock.advance(60)  # the renewal's answer takes a minute of the run's time
        clock.advance(40)
        _until(lambda: _claim_writes(fake) > writes, "the late renewal")

    result, snap, clock = _while_a_download_is_held(fake, scene, run_job, during)
    assert result.counts()["uploaded"] == 0 and result.counts()["waiting"] == 1, result.report["outcomes"]
    assert "claim on the asset ran out" in result.outcomes("waiting")[0]["reason"]
    check(scene.world, snap, require_done=False)
    fake.faults.clear()
    assert run_job(scene.env(), clock=Later(clock.offset + 200)).counts()["uploaded"] == 1
    check(scene.world, snap)

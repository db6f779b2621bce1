"""Bad configuration and bad server answers: a one-line error naming the problem and the fix, the
documented exit code, no change on the server, and never the API key in any output."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import CANARY, spawn_job


def assert_clean(result, code: int, *phrases: str) -> None:
    assert result.code == code, (result.code, result.stderr)
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got: {lines}"
    assert lines[0].startswith("ext2int: ")
    for phrase in phrases:
        assert phrase in lines[0], f"{phrase!r} not in {lines[0]!r}"
    everything = result.stdout + result.stderr + str(result.report or "")
    assert CANARY not in everything


def env_with(scene, **overrides):
    env = scene.env(CANARY)
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


@pytest.mark.parametrize("overrides,phrases", [
    (dict(IMMICH_URL=None), ["IMMICH_URL is not set"]),
    (dict(IMMICH_URL=""), ["IMMICH_URL is not set"]),
    (dict(IMMICH_API_KEY=""), ["IMMICH_API_KEY is not set", "API Keys"]),
    (dict(IMMICH_URL="immich-server:2283"), ["IMMICH_URL", "http://", "immich-server:2283"]),
    (dict(IMMICH_API_KEY=None, IMMICH_API_KEY_FILE="/nonexistent/key"), ["IMMICH_API_KEY_FILE", "/nonexistent/key does not exist"]),
    (dict(EXT2INT_BATCH_SIZE="0"), ["EXT2INT_BATCH_SIZE", "1 or more"]),
    (dict(EXT2INT_BATCH_SIZE="-5"), ["EXT2INT_BATCH_SIZE", "1 or more"]),
    (dict(EXT2INT_BATCH_SIZE="many"), ["EXT2INT_BATCH_SIZE", "whole number"]),
    (dict(EXT2INT_SCHEDULE="every night"), ["EXT2INT_SCHEDULE", "cron", "30 2 * * *"]),
    (dict(EXT2INT_SCHEDULE="61 * * * *"), ["EXT2INT_SCHEDULE", "cron"]),
    (dict(EXT2INT_DELETE="nuke"), ["EXT2INT_DELETE", "'trash', 'force' or 'keep'"]),
    (dict(EXT2INT_LIBRARY_IDS="photos"), ["EXT2INT_LIBRARY_IDS", "'photos' is not a library id", "ext2int libraries"]),
    (dict(EXT2INT_CONCURRENCY="0"), ["EXT2INT_CONCURRENCY", "between 1 and 32"]),
    (dict(EXT2INT_MAX_BYTES="lots"), ["EXT2INT_MAX_BYTES", "500MB"]),
    (dict(EXT2INT_MAX_DURATION="soon"), ["EXT2INT_MAX_DURATION", "30m"]),
    (dict(EXT2INT_TIMEZONE="Mars/Olympus"), ["EXT2INT_TIMEZONE", "Europe/Paris"]),
    (dict(IMMICH_URL="http://[::1"), ["IMMICH_URL", "not a valid address", "Invalid IPv6"]),
    (dict(IMMICH_URL="http://immich:99999"), ["IMMICH_URL", "port must be a number from 1 to 65535"]),
    (dict(IMMICH_URL="http://immich:2283/?x=1"), ["IMMICH_URL", "query"]),
    (dict(EXT2INT_HTTP_TIMEOUT="0"), ["EXT2INT_HTTP_TIMEOUT", "at least 1s"]),
    (dict(EXT2INT_QUEUE_POLL="0"), ["EXT2INT_QUEUE_POLL", "at least 1s"]),
    (dict(EXT2INT_SCHEDULE="0 0 31 2 *"), ["EXT2INT_SCHEDULE", "never fires"]),
    (dict(EXT2INT_REPORT="/proc/no/report.json"), ["EXT2INT_REPORT", "cannot write in /proc"]),
    (dict(EXT2INT_PUSHGATEWAY_URL="http://push:0"), ["EXT2INT_PUSHGATEWAY_URL", "port"]),
    (dict(EXT2INT_METRICS_ADDR="every where"), ["EXT2INT_METRICS_ADDR", "IP address or a host name"]),
    (dict(IMMICH_API_KEY=CANARY + " " + CANARY), ["IMMICH_API_KEY", "space inside the key"]),
])
def test_configuration_errors_exit_2_before_contacting_the_server(overrides, phrases, fake, scene, canary, run_job):
    result = run_job(env_with(scene, **overrides))
    assert_clean(result, 2, *phrases)
    assert not fake.log, "nothing may be contacted with a bad configuration"


def test_every_configuration_problem_is_listed_at_once(fake, scene, run_job):
    result = run_job({"EXT2INT_BATCH_SIZE": "0", "EXT2INT_DELETE": "nuke"})
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert [line.split(":")[1].strip().split()[0] for line in lines] == [
        "IMMICH_URL", "EXT2INT_BATCH_SIZE", "EXT2INT_DELETE", "IMMICH_API_KEY"]


def test_a_key_file_is_read_and_its_newline_ignored(tmp_path, fake, scene, canary, run_job):
    key_file = tmp_path / "key"
    key_file.write_text(CANARY + "\n")
    result = run_job(env_with(scene, IMMICH_API_KEY=None, IMMICH_API_KEY_FILE=str(key_file)))
    assert result.code == 0 and result.counts()["uploaded"] == 1
    assert CANARY not in result.stdout + result.stderr + str(result.report)


def test_an_unknown_library_is_a_configuration_error(fake, scene, canary, run_job):
    missing = "00000000-0000-4000-8000-000000000000"
    assert_clean(run_job(env_with(scene, EXT2INT_LIBRARY_IDS=missing)), 2, missing, "does not exist", "ext2int libraries")
    assert not fake.mutating_requests()


def test_an_id_that_is_not_an_external_library_is_refused(fake, scene, canary, run_job):
    album = scene.album("Not a library")
    assert_clean(run_job(env_with(scene, EXT2INT_LIBRARY_IDS=album.id)), 2, album.id, "does not exist")
    assert not fake.mutating_requests()


def test_a_refused_key_exits_3(fake, scene, canary, run_job):
    env = env_with(scene, IMMICH_API_KEY="not-a-key-" + CANARY[:4])
    assert_clean(run_job(env), 3, "GET /api/users/me", "401", "refused", "IMMICH_API_KEY")
    assert not fake.mutating_requests()


def test_a_missing_permission_is_named_and_nothing_changes(fake, scene, run_job):
    scene.world.add_key(scene.admin, permissions=[p for p in (
        "user.read asset.read asset.download asset.upload asset.update asset.copy album.read album.update tag.asset "
        "stack.read stack.update face.read face.create person.read person.create person.update sharedLink.read "
        "asset.edit.get asset.edit.create library.read").split()], secret=CANARY)
    lib = scene.library()
    photo = scene.photo(lib, "a.jpg")
    result = run_job(env_with(scene))
    assert_clean(result, 1, "asset.delete", "API Keys")
    assert not fake.mutating_requests() and photo.deleted_at is None


def test_a_permission_refused_mid_run_stops_the_run(fake, scene, canary, run_job):
    """On servers without GET /api-keys/me the first refusal stops the run instead of failing asset after asset."""
    for i in range(3):
        scene.photo(canary and scene.world.libraries[canary.id], f"more{i}.jpg")
    fake.faults.add("respond", method="GET", route="/api-keys/me", status=404,
                    body=b'{"message":"Cannot GET /api/api-keys/me","error":"Not Found","statusCode":404}')
    fake.faults.add("respond", method="DELETE", route="/assets", status=403, times=0,
                    body=b'{"message":"Missing required permission: asset.delete"}')
    result = run_job(env_with(scene, EXT2INT_CONCURRENCY="1"))
    assert result.code == 1
    failed = result.outcomes("failed")
    # until a first delete went through, a unit goes all the way alone: only that one fails
    assert len(failed) == 1 and "asset.delete" in failed[0]["reason"]
    assert len(result.outcomes()) == 1, "the run stopped after the first unit"
    assert "asset.delete" in result.report["stoppedBecause"]
    assert not [a for a in scene.world.assets.values() if not a.internal and a.deleted_at]


@pytest.mark.parametrize("route,status,body,content_type,phrases", [
    ("/server/version", 404, b'{"message":"Cannot GET /api/server/version","statusCode":404}', "application/json", ["404"]),
    ("/server/version", 200, b"<html><body>Welcome to nginx!</body></html>", "text/html", ["HTML page", "IMMICH_URL"]),
    ("/server/version", 502, b"<html><body>502 Bad Gateway</body></html>", "text/html", ["HTML page"]),
    ("/users/me", 200, b'{"id": "a77b2284-32d8-4a61-b857', "application/json", ["truncated JSON"]),
    ("/users/me", 200, b'{"unexpected": true}', "application/json", ["shape we do not know", "id"]),
    ("/server/version", 200, b'{"major": 1, "minor": 140, "patch": 0}', "application/json", ["older than 2.0", "upgrade"]),
])
def test_bad_server_answers_exit_3_with_a_named_call(route, status, body, content_type, phrases, fake, scene, canary, run_job):
    fake.faults.add("respond", method="GET", route=route, status=status, body=body, content_type=content_type, times=0)
    assert_clean(run_job(env_with(scene, EXT2INT_HTTP_RETRIES="0")), 3, *phrases)
    assert not fake.mutating_requests()


def test_an_unreachable_server_exits_3(scene, canary, run_job):
    result = run_job(env_with(scene, IMMICH_URL="http://127.0.0.1:9", EXT2INT_HTTP_RETRIES="0"))
    assert_clean(result, 3, "connection", "IMMICH_URL")


def test_an_unknown_command_is_a_usage_error(run_job):
    assert run_job({}, "explode").code == 2


def test_a_report_folder_that_is_a_file_is_refused_before_anything(tmp_path, fake, scene, canary, run_job):
    (tmp_path / "taken").write_text("a file, not a folder")
    assert_clean(run_job(env_with(scene, EXT2INT_REPORT=str(tmp_path / "taken" / "report.json"))), 2, "EXT2INT_REPORT")
    assert not fake.log


def test_a_report_that_cannot_be_written_late_loses_neither_summary_nor_exit_code(tmp_path, fake, scene, canary, run_job):
    folder = tmp_path / "reports"
    env = env_with(scene, EXT2INT_REPORT=str(folder / "report.json"))
    fake.faults.add("notify", method="POST", route="/assets")
    fake.on_notify = lambda: (folder.rmdir() if folder.exists() else None, folder.write_text("now a file"))
    result = run_job(env)
    assert result.code == 0 and result.report is None
    assert "could not write the report" in result.stderr and '"event": "summary"' in result.stderr
    assert canary and scene.world.created_assets, "the move itself went through"


def test_a_signal_during_start_up_stops_the_run_before_it_moves_anything(fake, scene, canary, tmp_path):
    import signal

    report = tmp_path / "report.json"
    proc = spawn_job({**env_with(scene), "EXT2INT_REPORT": str(report)})
    held = fake.faults.add("hold", method="GET", route="/users/me")
    fake.faults.add("notify", method="GET", route="/users/me")
    fake.on_notify = lambda: (os.kill(proc.pid, signal.SIGTERM), held.release())
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert json.loads(report.read_text())["stoppedBecause"] == "stopped by SIGTERM"
    assert not fake.requests("GET", "/assets/{id}/original") and not fake.mutating_requests()


def test_an_empty_file_is_skipped_once_said_and_counted(fake, scene, run_job):
    lib = scene.library()
    empty = scene.photo(lib, "empty.jpg", data=b"")
    scene.photo(lib, "full.jpg")
    for _ in range(2):
        result = run_job(scene.env())
        assert result.code == 0, result.stderr
    skipped, = result.outcomes("skipped")
    assert skipped["reason"] == "empty" and "0 bytes" in skipped["reasonText"] and empty.deleted_at is None


def test_a_proxys_login_page_is_not_called_a_bad_key(fake, scene, canary, run_job):
    fake.faults.add("respond", method="GET", route="/server/version", status=401, times=0,
                    body=b"<html>401 Authorization Required</html>", content_type="text/html")
    assert_clean(run_job(env_with(scene)), 3, "HTTP 401", "proxy", "IMMICH_URL")
    assert "create a new key" not in run_job(env_with(scene)).stderr


def test_a_redirect_says_where_it_points(fake, scene, canary, run_job):
    fake.faults.add("respond", method="GET", route="/server/version", status=302, times=0, body=b"",
                    content_type="text/plain", headers={"Location": "https://photos.example.org/api/server/version"})
    assert_clean(run_job(env_with(scene)), 3, "HTTP 302", "https://photos.example.org/api/server/version")


def test_immichs_own_cli_name_for_the_address_works_too(fake, scene, canary, run_job):
    env = env_with(scene, IMMICH_URL=None)
    env["IMMICH_INSTANCE_URL"] = fake.url
    assert run_job(env).counts()["uploaded"] == 1


def test_a_non_admin_key_naming_a_library_it_cannot_see_is_told_so(fake, scene, canary, run_job):
    mine = scene.library("admins")
    scene.photo(mine, "x.jpg")
    result = run_job(env_with(scene, IMMICH_API_KEY=scene.other_key, EXT2INT_LIBRARY_IDS=mine.id))
    assert_clean(result, 2, "EXT2INT_LIBRARY_IDS", "sees no asset", "belongs to another user")
    assert not fake.mutating_requests()

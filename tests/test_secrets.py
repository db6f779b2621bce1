"""No output ever holds a secret: canaries (an API key, and passwords in IMMICH_URL and in the
Pushgateway's URL) are fed through every path that writes something (bad key files, refused headers,
server errors that echo the key, failing pushes, DEBUG logs, a bug's exception in the main thread and
in a worker, the JSON report), and every byte the job wrote is searched for them. Then garbage is fed
into every variable: one line per bad variable, exit 2, no traceback, no secret."""

from __future__ import annotations

import json
import os
import re
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import CANARY, spawn_job

PASSWORD = "canary-pass/word@42"  # a URL password with characters that are percent-encoded in a URL
GATEWAY_PASSWORD = "gateway-canary-9137"


def secrets_in(text: str) -> list[str]:
    spellings = [CANARY, PASSWORD, quote(PASSWORD, safe=""), GATEWAY_PASSWORD]
    return [s for s in spellings if s in text]


def everything(result) -> str:
    return result.stdout + result.stderr + json.dumps(result.report or {})


def url_with_password(fake) -> str:
    return fake.url.replace("http://", f"http://ext2int:{quote(PASSWORD, safe='')}@")


@pytest.mark.parametrize("content", [
    f"{CANARY}\n# my key\n",  # a comment on a second line
    f"{CANARY}\n{CANARY}\n",  # the key twice
    f"\ufeff{CANARY}\n",  # a byte-order mark (Windows editors)
    f"{CANARY[:10]}\n{CANARY[10:]}",  # a key broken over two lines
    f"IMMICH_API_KEY={CANARY}\n",  # a pasted .env line
])
def test_a_bad_key_file_never_shows_the_key(content, tmp_path, fake, canary, scene, run_job):
    key_file = tmp_path / "key"
    key_file.write_text(content, encoding="utf-8")
    result = run_job({**scene.env(), "IMMICH_API_KEY": "", "IMMICH_API_KEY_FILE": str(key_file),
                      "EXT2INT_LOG_LEVEL": "DEBUG", "EXT2INT_HTTP_RETRIES": "0"})
    assert not secrets_in(everything(result)), result.stderr
    assert "Traceback" not in result.stderr
    assert result.code in (0, 2, 3), result.stderr


def test_a_key_with_a_line_break_is_refused_offline_without_showing_it(fake, scene, run_job):
    result = run_job({**scene.env(), "IMMICH_API_KEY": f"{CANARY}\nmore"})
    assert result.code == 2 and "IMMICH_API_KEY holds 2 lines" in result.stderr
    assert not fake.log and not secrets_in(everything(result))


def test_passwords_in_urls_and_a_key_echoed_by_the_server_never_appear(fake, canary, scene, run_job):
    # the server echoes the key in an error, a push to an unreachable gateway fails, DEBUG logs every change
    echo = json.dumps({"message": f"internal error for key {CANARY}"}).encode()
    fake.faults.add("respond", method="GET", route="/assets/{id}/original", status=400, body=echo, times=0)
    result = run_job({**scene.env(CANARY), "IMMICH_URL": url_with_password(fake), "EXT2INT_LOG_LEVEL": "DEBUG",
                      "EXT2INT_PUSHGATEWAY_URL": f"http://push:{GATEWAY_PASSWORD}@127.0.0.1:9"})
    assert result.code == 1, result.stderr
    assert "could not read this job's totals from the Pushgateway at http://127.0.0.1:9" in result.stderr
    assert "[redacted]" in result.stderr
    assert any("[redacted]" in o["reason"] for o in result.outcomes("failed")), "the echo reached the report, scrubbed"
    assert not secrets_in(everything(result))


def test_a_bad_port_with_a_password_is_one_line_exit_2(fake, scene, run_job):
    result = run_job({**scene.env(CANARY), "IMMICH_URL": f"http://user:{quote(PASSWORD, safe='')}@127.0.0.1:99999"})
    assert result.code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "port must be a number from 1 to 65535" in result.stderr and not secrets_in(everything(result))


def test_a_bug_in_the_main_thread_is_one_line_without_secrets(fake, canary, scene, run_job, monkeypatch):
    from job.run import runner

    def broken(self, unit, scope):
        raise RuntimeError(f"a bug that quotes {CANARY} and {PASSWORD}")

    monkeypatch.setattr(runner.Runner, "quick", broken)
    result = run_job({**scene.env(CANARY), "IMMICH_URL": url_with_password(fake), "EXT2INT_LOG_LEVEL": "DEBUG"})
    assert result.code == 1 and "unexpected error: RuntimeError" in result.stderr
    assert "Traceback" in result.stderr, "DEBUG shows where it happened"
    assert not secrets_in(everything(result))


def test_a_bug_in_a_worker_thread_is_reported_without_secrets(fake, canary, scene, run_job, monkeypatch):
    from job.move import read

    def broken(ctx, asset_id, **_):
        raise RuntimeError(f"a worker's bug quoting {CANARY}")

    monkeypatch.setattr(read, "source", broken)
    result = run_job(scene.env(CANARY))
    failed, = result.outcomes("failed")
    assert failed["stage"] == "incomplete" and "[redacted]" in failed["reason"]
    assert not secrets_in(everything(result))


def test_a_subprocess_killed_by_a_crash_in_startup_leaks_nothing(fake, scene):
    scene.world.add_key(scene.admin, secret=CANARY)
    fake.faults.add("respond", method="GET", route="/server/version", status=200, times=0,
                    body=f'<html>proxy error for {CANARY}</html>'.encode(), content_type="text/html")
    proc = spawn_job({**scene.env(CANARY), "IMMICH_URL": url_with_password(fake), "EXT2INT_LOG_LEVEL": "DEBUG"})
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3 and not secrets_in(out + err), err


# --- garbage in every variable --------------------------------------------------------------------------

VARIABLES = ["IMMICH_URL", "IMMICH_API_KEY", "EXT2INT_LIBRARY_IDS", "EXT2INT_BATCH_SIZE", "EXT2INT_MAX_BYTES",
             "EXT2INT_MAX_DURATION", "EXT2INT_CONCURRENCY", "EXT2INT_DELETE", "EXT2INT_ON_CONFLICT",
             "EXT2INT_JOIN_DESCRIPTIONS", "EXT2INT_ASSUME_UNSHARED", "EXT2INT_REHASH_AFTER", "EXT2INT_CLAIM_WAIT",
             "EXT2INT_CLAIM_TTL", "EXT2INT_REPORT", "EXT2INT_SCHEDULE", "EXT2INT_TIMEZONE", "EXT2INT_RUN_AT_START",
             "EXT2INT_METRICS_PORT", "EXT2INT_METRICS_ADDR", "EXT2INT_PUSHGATEWAY_URL", "EXT2INT_QUEUE_THRESHOLD",
             "EXT2INT_QUEUE_ACTION", "EXT2INT_QUEUE_MAX_PAUSE", "EXT2INT_QUEUE_POLL", "EXT2INT_SETTLE_TIMEOUT",
             "EXT2INT_SETTLE_CONFIRM", "EXT2INT_FACE_WAIT", "EXT2INT_SHUTDOWN_GRACE", "EXT2INT_HTTP_TIMEOUT",
             "EXT2INT_HTTP_RETRIES", "EXT2INT_TRANSFER_RETRIES", "EXT2INT_LOG_FORMAT", "EXT2INT_LOG_LEVEL",
             "EXT2INT_PROGRESS", "IMMICH_API_KEYS_DIR", "EXT2INT_RUN_ID", "EXT2INT_VERIFY_HASH", "EXT2INT_MOVE_UNDONE"]
GARBAGE = st.one_of(
    st.text(min_size=1, max_size=30),
    st.sampled_from(["-1", "0", "1e9", "99999", "nan", "∞", "12xyz", "http://", "[::1", "true false", "\x00",
                     "/dev/null/x", "* * * *", "0 0 31 2 *", f"{CANARY}\n", f"http://u:{PASSWORD}@h:0"]),
)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(garbage=st.dictionaries(st.sampled_from(VARIABLES), GARBAGE, min_size=1, max_size=4))
def test_garbage_in_any_variable_is_one_line_each_exit_2_and_never_a_secret(garbage, run_job, tmp_path_factory):
    env = {"IMMICH_URL": f"http://ext2int:{quote(PASSWORD, safe='')}@127.0.0.1:9", "IMMICH_API_KEY": CANARY,
           "EXT2INT_HTTP_RETRIES": "0", "EXT2INT_REPORT": str(tmp_path_factory.mktemp("r") / "report.json"),
           "EXT2INT_LOG_FORMAT": "json", "EXT2INT_PROGRESS": "off"}
    env.update({k: v.replace("\x00", "") for k, v in garbage.items()})  # an environment cannot hold NUL
    result = run_job(env)
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert not secrets_in(output + json.dumps(result.report or {}))
    assert result.code in (2, 3), (result.code, output)  # the server at port 9 never answers
    if result.code == 2:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines and all(line.startswith("ext2int: ") for line in lines), lines
        named = [re.match(r"ext2int: ([A-Z0-9_]+)", line) for line in lines]
        assert all(m and (m.group(1).startswith(("IMMICH_", "EXT2INT_")) or m.group(1) == "TZ") for m in named), lines
        assert len(lines) == len({m.group(1) for m in named}), "one line per variable"
    os.environ.pop("EXT2INT_REPORT", None)

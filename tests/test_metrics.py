"""Metrics served and pushed, the Grafana dashboard, and the logs: truthful, and without the key."""

from __future__ import annotations

import json
import re
import signal
import socket
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from job.metrics import Metrics
from job.report import Report
from tests.conftest import CANARY, ROOT, spawn_job
from tests.prometheus import Pushgateway
from tests.invariant import check, snapshot

DASHBOARD = ROOT / "helm" / "dashboards" / "immich-ext2int.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(found: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in found.items() if n == name and all(dict(ls).get(k) == w for k, w in labels.items()))


def test_service_mode_serves_metrics_that_match_what_happened(fake, scene):
    scene.world.add_key(scene.admin, secret=CANARY)
    lib = scene.library()
    for i in range(3):
        scene.photo(lib, f"p{i}.jpg", size=10_000)
    gone = scene.photo(lib, "gone.jpg")
    gone.is_offline = True
    snap = snapshot(scene.world, [lib.id], scene.admin.id)
    port = free_port()
    proc = spawn_job(scene.env(CANARY, EXT2INT_SCHEDULE="0 0 1 1 *", EXT2INT_RUN_AT_START="true",
                               EXT2INT_METRICS_PORT=str(port), EXT2INT_METRICS_ADDR="127.0.0.1"), "serve")
    try:
        logged = []
        for line in proc.stderr:  # the run at start ends with its summary line; its metrics are then set
            logged.append(line)
            if '"event": "summary"' in line:
                break
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        found = samples(text)
        assert CANARY not in text + "".join(logged)
        assert value(found, "ext2int_assets_total", outcome="uploaded", library=lib.id) == 3
        assert value(found, "ext2int_assets_total", outcome="skipped", reason="offline") == 1
        assert value(found, "ext2int_bytes_total") == 30_000
        assert value(found, "ext2int_remaining_assets", library=lib.id) == 1, "the offline asset stays"
        assert value(found, "ext2int_last_run_assets", outcome="uploaded") == 3
        assert value(found, "ext2int_runs_total", result="success") == 1
        assert value(found, "ext2int_last_success_timestamp_seconds") > 0
        assert value(found, "ext2int_step_duration_seconds_count", step="upload") == 3
        assert value(found, "ext2int_build_info", immich_version="3.1.0") == 1
        assert value(found, "ext2int_immich_queue_backlog_jobs") == 0
        assert value(found, "ext2int_last_run_http_requests") > 0
        check(scene.world, snap)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert CANARY not in out + err
    schedule_line = next(json.loads(line) for line in logged if '"event": "schedule"' in line)
    assert schedule_line["nextRuns"].count("-01-01T00:00:00") == 3, "the next fire times are logged"


def test_run_once_pushes_one_group_to_a_real_pushgateway_and_adds_to_its_totals(scene, run_job, tmp_path):
    gateway = Pushgateway(tmp_path)
    try:
        family, scans = scene.library("Family"), scene.library("Scans")  # two libraries: one group all the same
        scene.photo(family, "a.jpg", size=5000)
        scene.photo(scans, "b.jpg", size=7000)
        first = run_job(scene.env(EXT2INT_PUSHGATEWAY_URL=gateway.url, EXT2INT_LIBRARY_IDS=family.id))
        second = run_job(scene.env(EXT2INT_PUSHGATEWAY_URL=gateway.url))
        found = samples(gateway.group_text())
    finally:
        gateway.stop()
    assert first.code == second.code == 0 and "could not" not in first.stderr + second.stderr
    groups = {dict(labels).get("job") for (name, labels) in found if name == "push_time_seconds"}
    assert groups == {"immich-ext2int"}, "one group, grouped by job alone"
    assert value(found, "ext2int_assets_total", outcome="uploaded", library=family.id) == 1
    assert value(found, "ext2int_assets_total", outcome="uploaded", library=scans.id) == 1
    assert value(found, "ext2int_runs_total", result="success") == 2, "the second run added to the first one's totals"
    assert value(found, "ext2int_bytes_total") == 12_000
    assert value(found, "ext2int_last_run_bytes") == 7000, "the last run's own"
    assert value(found, "ext2int_remaining_assets", library=scans.id) == 0
    names = {dict(labels)["name"] for (name, labels) in found if name == "ext2int_library_info"}
    assert names == {"Family", "Scans"}
    assert value(found, "ext2int_run_in_progress") == 0


def test_an_unreachable_pushgateway_does_not_fail_the_run(scene, run_job):
    lib = scene.library()
    scene.photo(lib, "a.jpg")
    result = run_job(scene.env(EXT2INT_PUSHGATEWAY_URL="http://127.0.0.1:9"))
    assert result.code == 0 and "could not read this job's totals from the Pushgateway" in result.stderr
    assert result.counts()["uploaded"] == 1


def exported_names() -> set[str]:
    """Every series name the job can export, once two runs have ended."""
    metrics = Metrics()
    for _ in range(2):
        metrics.record_run(Report(command="run"))
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "info": ["_info"], "gauge": [""]}
    return {family.name + suffix for family in metrics.registry.collect() for suffix in suffixes[family.type]}


def test_dashboard_imports_without_editing_and_uses_only_exported_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    exprs = []
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        exprs += [t["expr"] for t in panel["targets"]]
    used = set(re.findall(r"\bext2int_[a-z_]+", " ".join(exprs)))
    assert used, "the dashboard shows nothing of ours"
    assert used <= exported_names(), f"not exported: {used - exported_names()}"
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("done", "moved", "left to move", "stuck", "per hour", "time to done", "successful run", "failing",
                  "per library", "not moved", "backlog"):
        assert topic in titles


def test_the_dashboard_is_what_its_builder_makes():
    import runpy

    built = runpy.run_path(str(DASHBOARD.with_name("build.py")))["render"]()
    assert DASHBOARD.read_text() == built, "run `python helm/dashboards/build.py` after changing it"


def test_metric_names_follow_prometheus_conventions():
    for family in Metrics().registry.collect():
        assert family.name.startswith("ext2int_")
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
        for unit in ("seconds", "bytes"):
            assert not family.name.endswith(f"_{unit}s")


def test_json_logs_have_one_line_per_asset_and_never_the_key(scene, run_job):
    scene.world.add_key(scene.admin, secret=CANARY)
    lib = scene.library()
    scene.photo(lib, "a.jpg")
    scene.photo(lib, "b.jpg").is_offline = True
    result = run_job(scene.env(CANARY))
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    per_asset = [line for line in lines if line.get("event") == "asset"]
    assert sorted(line["outcome"] for line in per_asset) == ["skipped", "uploaded"]
    assert all(line["level"] in ("info", "warning") for line in lines)
    assert CANARY not in result.stderr + result.stdout + json.dumps(result.report)


def test_debug_logs_name_every_change_and_never_the_key(scene, run_job):
    scene.world.add_key(scene.admin, secret=CANARY)
    lib = scene.library()
    scene.photo(lib, "a.jpg")
    result = run_job(scene.env(CANARY, EXT2INT_LOG_LEVEL="DEBUG"))
    changes = [json.loads(line)["message"] for line in result.stderr.splitlines() if json.loads(line)["level"] == "debug"]
    assert any(m.startswith("POST /api/assets -> 201") for m in changes)
    assert any(m.startswith("DELETE /api/assets -> 204") for m in changes)
    assert CANARY not in result.stderr + result.stdout


def test_a_key_that_reaches_a_log_line_is_scrubbed_on_its_way_out(capsys):
    from job import logs, secrets

    with secrets.guarded({"IMMICH_API_KEY": CANARY}):
        logger = logs.setup("json", "INFO")
        logger.info("request failed for %s", f"http://x/?key={CANARY}")
    err = capsys.readouterr().err
    assert CANARY not in err and "[redacted]" in err


def test_dashboard_file_is_the_one_compose_and_helm_use():
    compose = (ROOT / "compose.example.yml").read_text()
    assert "helm/dashboards/immich-ext2int.json" in compose or "./helm/dashboards" in compose
    chart_templates = " ".join(p.read_text() for p in (ROOT / "helm" / "templates").glob("*.yaml"))
    assert 'Files.Get "dashboards/immich-ext2int.json"' in chart_templates
    assert Path(DASHBOARD).exists()

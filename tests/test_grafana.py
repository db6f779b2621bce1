"""Grafana tells the truth: the real job, a real Pushgateway and a real Prometheus (Debian's), and every
expression of the dashboard and of the PrometheusRule evaluated by Prometheus, compared with what the
runs did (their JSON reports). Run-once runs push (two libraries, a partial run, a run that cannot reach
Immich); a service is scraped."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from job import __version__
from job.metrics import LASTING_SKIPS
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import spawn_job
from tests.prometheus import Prometheus, Pushgateway, binary, free_port, wait_for
from tests.test_deploy import render

DASHBOARD = json.loads((Path(__file__).resolve().parent.parent / "helm" / "dashboards" / "immich-ext2int.json").read_text())
MOVED = ("uploaded", "merged")


def rules_file(tmp: Path) -> tuple[Path, dict[str, str]]:
    """The chart's PrometheusRule as a Prometheus rule file (checked by promtool), and its alerts' exprs."""
    docs = render({"immich": {"apiKey": {"existingSecret": "s"}}, "metrics": {"prometheusRule": {"enabled": True}}})
    spec = next(d for d in docs if d["kind"] == "PrometheusRule")["spec"]
    path = tmp / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": spec["groups"]}))
    check = subprocess.run([binary("promtool"), "check", "rules", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    return path, {r["alert"]: r["expr"] for g in spec["groups"] for r in g["rules"]}


def targets() -> list[tuple[str, str, str]]:
    return [(p["title"], t["refId"], t["expr"]) for p in DASHBOARD["panels"] for t in p["targets"]]


def instant(prom: Prometheus, expr: str, range_: str, at: float | None) -> list[dict]:
    """A dashboard expression as Grafana sends it: the time range and 'all libraries' filled in."""
    return prom.query(expr.replace("$__range", range_).replace("$library", ".*"), at=at)


class Truth:
    """What the runs did, from their reports: the numbers every panel must show."""

    def __init__(self) -> None:
        self.reports: list[dict] = []
        self.results: list[str] = []

    def add(self, code: int, report: dict | None) -> None:
        self.results.append("error" if report is None or code == 3 else "partial" if code == 1 else "success")
        if report is not None:
            self.reports.append(report)

    def outcomes(self, since: int = 0):
        for report in self.reports[since:]:
            yield from report["outcomes"]

    def moved(self, since: int = 0, library: str | None = None) -> int:
        return sum(o["assets"] for o in self.outcomes(since) if o["kind"] in MOVED
                   and (library is None or o["library_id"] == library))

    def not_moved(self, since: int = 0) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for o in self.outcomes(since):
            if o["kind"] not in MOVED:
                label = o["stage"] if o["kind"] == "failed" else o["reason"] if o["kind"] in ("held", "skipped") else ""
                out[(o["kind"], label)] = out.get((o["kind"], label), 0) + o["assets"]
        return out

    @property
    def last(self) -> dict:
        return self.reports[-1]

    def stuck(self, library: str) -> int:
        return sum(o["assets"] for o in self.last["outcomes"] if o["library_id"] == library
                   and (o["kind"] == "held" or (o["kind"] == "skipped" and o["reason"] in {s.value for s in LASTING_SKIPS})))

    def left(self) -> int:
        return sum(n - self.stuck(lib) for lib, n in self.last["remaining"].items())


def buckets(group_text: str) -> dict[str, dict[float, float]]:
    """The step histogram's cumulative bucket counts per step, as the Pushgateway holds them."""
    out: dict[str, dict[float, float]] = {}
    for family in text_string_to_metric_families(group_text):
        for s in family.samples:
            if s.name == "ext2int_step_duration_seconds_bucket" and s.labels.get("job") == "immich-ext2int":
                out.setdefault(s.labels["step"], {})[float(s.labels["le"])] = s.value
    return out


def p95(now: dict[float, float], then: dict[float, float]) -> float | None:
    """histogram_quantile(0.95, ...) over the counts between two snapshots, as Prometheus computes it."""
    counts = sorted((le, c - then.get(le, 0.0)) for le, c in now.items())
    total = counts[-1][1]
    if total == 0:
        return None
    rank, lower, below = 0.95 * total, 0.0, 0.0
    for le, cumulative in counts:
        if cumulative >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * (rank - below) / (cumulative - below)
        lower, below = le, cumulative
    raise AssertionError("unreachable: the +Inf bucket holds every observation")


def one(result: list[dict]) -> float | None:
    assert len(result) <= 1, result
    return result[0]["value"] if result else None


def by(result: list[dict], *labels: str) -> dict:
    return {tuple(r["metric"].get(label, "") for label in labels): r["value"] for r in result}


def check_dashboard(prom: Prometheus, truth: Truth, names: dict[str, str], range_: str, since: int,
                    last_run_error: bool, histograms: tuple[dict, dict], at: float | None = None,
                    audits: dict[tuple[str, str], float] | None = None) -> None:
    """Every target of every panel, against the runs since run number `since` (the time range's start)."""
    moved = truth.moved(since)
    left = truth.left()
    stuck = sum(truth.stuck(lib) for lib in truth.last["remaining"])
    last_moved = 0 if last_run_error else truth.moved(len(truth.reports) - 1)
    interval = one(prom.query("ext2int_last_run_interval_seconds"))
    pace = None if interval is None else last_moved / interval
    results = {r: truth.results[since:].count(r) for r in ("success", "partial", "error")}
    owners = truth.last["libraryOwners"]

    def per_user(count) -> dict[tuple[str], float]:
        out: dict[tuple[str], float] = {}
        for lib, n in truth.last["remaining"].items():
            out[(owners[lib],)] = out.get((owners[lib],), 0) + count(lib, n)
        return out

    now, then = histograms
    quantiles = {(step,): p95(counts, then.get(step, {})) for step, counts in now.items()}
    quantiles = {step: pytest.approx(q) for step, q in quantiles.items() if q is not None}
    checks = {
        ("Done", "A"): lambda r: one(r) == pytest.approx(moved / (moved + left)),
        ("Moved", "A"): lambda r: one(r) == moved,
        ("Left to move", "A"): lambda r: one(r) == left,
        ("Stuck until you act", "A"): lambda r: one(r) == stuck,
        ("Assets per hour", "A"): lambda r: one(r) == (None if pace is None else pytest.approx(pace * 3600)),
        ("Estimated time to done", "A"): lambda r: one(r) == (0 if left == 0 else None if not pace else pytest.approx(left / pace)),
        ("Estimated time to done", "B"): lambda r: one(r) == (0 if pace == 0 and left > 0 else None),  # "stalled"
        ("Since the last successful run", "A"): lambda r: 0 <= one(r) < 600,
        ("Failing since", "A"): lambda r: one(r) is None if truth.results[-1] == "success" else 0 <= one(r) < 600,
        ("Running now", "A"): lambda r: one(r) == 0,
        ("Bytes per second", "A"): lambda r: one(r) == (None if last_run_error else pytest.approx(
            truth.last["bytesMoved"] / truth.last["durationSeconds"], rel=0.05)),
        ("Runs", "A"): lambda r: by(r, "result") == {(k,): v for k, v in results.items()},
        ("Runs", "B"): lambda r: one(r) == 0,
        ("Per user", "A"): lambda r: by(r, "owner") == per_user(lambda lib, n: n - truth.stuck(lib)),
        ("Per user", "B"): lambda r: by(r, "owner") == per_user(lambda lib, n: truth.stuck(lib)),
        ("Per user", "C"): lambda r: by(r, "owner") == per_user(lambda lib, n: truth.moved(since, lib)),
        ("Per library", "A"): lambda r: by(r, "name") == {(names[lib],): n - truth.stuck(lib)
                                                         for lib, n in truth.last["remaining"].items()},
        ("Per library", "B"): lambda r: by(r, "name") == {(names[lib],): truth.stuck(lib) for lib in truth.last["remaining"]},
        ("Per library", "C"): lambda r: by(r, "name") == {(names[lib],): truth.moved(since, lib) for lib in names},
        ("Not moved, and why (time range)", "A"): lambda r: by(r, "outcome", "reason") == truth.not_moved(since),
        ("Left to move per library", "A"): lambda r: by(r, "name") == {(names[lib],): n - truth.stuck(lib)
                                                                       for lib, n in truth.last["remaining"].items()},
        ("Last run by outcome", "A"): lambda r: by(r, "outcome") == {
            (k,): 0 if last_run_error else sum(o["assets"] for o in truth.last["outcomes"] if o["kind"] == k)
            for k in ("uploaded", "merged", "held", "waiting", "skipped", "failed")},
        ("Moved bytes", "A"): lambda r: one(r) == sum(rep["bytesMoved"] for rep in truth.reports[since:]),
        ("Waiting for Immich", "A"): lambda r: one(r) == sum(o["assets"] for o in truth.last["outcomes"] if o["kind"] == "waiting"),
        ("Paused for Immich", "A"): lambda r: one(r) == 0,
        ("Step durations (p95, time range)", "A"): lambda r: by(r, "step") == quantiles
                                                             and {"read", "upload", "delete"} <= {k[0] for k in quantiles},
        ("Immich queue backlog", "A"): lambda r: one(r) == 0,
        ("Versions", "A"): lambda r: by(r, "version", "immich_version") == {(__version__, "3.1.0"): 1},
        ("Last verify and undo", "A"): lambda r: by(r, "command", "outcome") == (audits or {}),
    }
    assert set(checks) == {(title, ref) for title, ref, _ in targets()}, "every target of the dashboard is checked"
    wrong = []
    for title, ref, expr in targets():
        result = instant(prom, expr, range_, at)
        if not checks[(title, ref)](result):
            wrong.append(f"{title} [{ref}]: {result}")
    assert not wrong, "\n".join(wrong)


@pytest.fixture
def monitoring(tmp_path):
    gateway = Pushgateway(tmp_path)
    rules, alerts = rules_file(tmp_path)
    prom = Prometheus(tmp_path, pushgateway=gateway, rule_files=[rules])
    yield gateway, prom, alerts
    prom.stop()
    gateway.stop()


def seen_by_prometheus(gateway: Pushgateway, prom: Prometheus) -> None:
    """Wait until Prometheus has scraped the group as the Pushgateway holds it now."""
    pushed = re.search(r'^push_time_seconds\{[^}]*job="immich-ext2int"[^}]*\} (\S+)$', gateway.group_text(), re.M)
    assert pushed, "the run pushed nothing"
    prom.scraped('max(push_time_seconds{job="immich-ext2int"})', float(pushed.group(1)))


def test_run_once_pushes_make_every_panel_and_alert_true(scene, run_job, fake, monitoring, tmp_path):
    """Two users' libraries (a family server, one key each), run after run."""
    gateway, prom, alerts = monitoring
    family = scene.library("Family photos")
    scans = scene.library("Scans", owner=scene.other)  # a family server: each user's library with their own key
    for i in range(5):
        scene.photo(family, f"f{i}.jpg", size=10_000 + i)
    scene.photo(family, "gone.jpg").is_offline = True  # stuck: offline
    for i in range(3):
        scene.photo(scans, f"s{i}.jpg", size=20_000 + i)
    names = {family.id: "Family photos", scans.id: "Scans"}
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "mum").write_text(scene.key)
    (keys / "dad").write_text(scene.other_key)
    env = scene.env(EXT2INT_PUSHGATEWAY_URL=gateway.url, EXT2INT_BATCH_SIZE="3", EXT2INT_CONCURRENCY="1",
                    IMMICH_API_KEY="", IMMICH_API_KEYS_DIR=str(keys))
    truth = Truth()
    marks = []  # Prometheus' time after each run was scraped
    steps = []  # the step histogram after each run

    def run(**more: str) -> None:
        result = run_job({**env, **more})
        truth.add(result.code, result.report)
        seen_by_prometheus(gateway, prom)
        marks.append(prom.value("time()"))
        steps.append(buckets(gateway.group_text()))

    def since(n: int) -> tuple[dict, dict]:
        return steps[-1], steps[n - 1] if n else {}

    run()
    run()
    check_dashboard(prom, truth, names, "1h", since=0, last_run_error=False, histograms=since(0))
    assert prom.alerts() == [] and all(h == "ok" for _, h in prom.rules_health())

    fake.faults.add("status", method="POST", route="/assets", status=500, times=0)  # uploads fail: a partial run
    run()
    fake.faults.clear()
    assert truth.results[-1] == "partial", (truth.reports[-1]["counts"], truth.reports[-1]["stoppedBecause"], truth.reports[-1]["remaining"], [(r["counts"]["uploaded"], r["assetsMoved"], r["stoppedBecause"]) for r in truth.reports])
    run(IMMICH_URL="http://127.0.0.1:9")  # Immich unreachable: exit 3, and still a run Grafana sees
    assert truth.results[-1] == "error"
    check_dashboard(prom, truth, names, "1h", since=0, last_run_error=True, histograms=since(0))
    failing = alerts["ImmichExt2intRunsFailing"]
    assert prom.query(failing) == [], "48 hours have not passed"
    assert prom.query(failing.replace("48 * 3600", "0 * 3600")), "every run since the partial one failed"

    run()
    run()
    assert truth.left() == 0 and truth.results[-1] == "success"
    check_dashboard(prom, truth, names, "1h", since=0, last_run_error=False, histograms=since(0))
    # A time range that starts after the first run: counted from the values at its start, exactly.
    now = prom.value("time()")
    range_ = f"{int((now - marks[0]) * 1000)}ms"  # from the moment Prometheus had the first run, before the second
    check_dashboard(prom, truth, names, range_, since=1, last_run_error=False, histograms=since(1), at=now)
    assert prom.query(failing.replace("48 * 3600", "0 * 3600")) == [], "the last run succeeded"
    assert prom.query(alerts["ImmichExt2intNoProgress"].replace("72 * 3600", "0 * 3600")) == [], "nothing left to move"
    assert prom.alerts() == [], "no alert on a healthy job"

    # a verify pushes its own counts, and leaves the runs' as they are
    audit = run_job({**env, "EXT2INT_VERIFY_HASH": "all"}, command="verify")
    assert audit.code == 0
    seen_by_prometheus(gateway, prom)
    check_dashboard(prom, truth, names, "1h", since=0, last_run_error=False, histograms=since(0),
                    audits={("verify", "verified"): audit.counts()["verified"]})
    assert audit.counts()["verified"] == truth.moved(), "one copy per moved asset (no live photos here)"


def test_a_service_is_scraped_and_tells_the_same_truth(scene, tmp_path):
    lib = scene.library("Family photos")
    for i in range(3):
        scene.photo(lib, f"p{i}.jpg", size=10_000)
    scene.photo(lib, "gone.jpg").is_offline = True
    port = free_port()
    rules, alerts = rules_file(tmp_path)
    prom = Prometheus(tmp_path, targets=[f"127.0.0.1:{port}"], rule_files=[rules])
    proc = spawn_job(scene.env(EXT2INT_SCHEDULE="0 0 1 1 *", EXT2INT_RUN_AT_START="true", EXT2INT_METRICS_PORT=str(port),
                               EXT2INT_METRICS_ADDR="127.0.0.1", EXT2INT_REPORT=str(tmp_path / "report.json")), "serve")
    try:
        for line in proc.stderr:
            if '"event": "summary"' in line:
                break
        report = json.loads((tmp_path / "report.json").read_text())
        wait_for(lambda: prom.value("max(ext2int_last_run_timestamp_seconds)"), "Prometheus to scrape the run")
        prom.scraped("max(ext2int_run_in_progress)", 0)
        truth = Truth()
        truth.add(0, report)
        assert truth.moved() == 3
        for title, ref, expr in targets():
            result = instant(prom, expr, "1h", None)
            if (title, ref) == ("Moved", "A"):
                assert one(result) == 3
            elif (title, ref) in {("Left to move", "A"), ("Waiting for Immich", "A")}:
                assert one(result) == 0
            elif (title, ref) == ("Stuck until you act", "A"):
                assert one(result) == 1, "the offline photo"
            elif (title, ref) == ("Runs", "A"):
                assert by(result, "result") == {("success",): 1, ("partial",): 0, ("error",): 0}
            elif title in ("Assets per hour", "Failing since"):
                assert result == [], f"{title}: nothing to show after one run"
            elif title == "Estimated time to done":
                assert one(result) == (0 if ref == "A" else None), "done"
        assert prom.alerts() == [] and all(h == "ok" for _, h in prom.rules_health())
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        lint = subprocess.run([binary("promtool"), "check", "metrics"], input=text, capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout + lint.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        prom.stop()
    assert proc.returncode == 0

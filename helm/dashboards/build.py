"""Builds immich-ext2int.json, the Grafana dashboard that compose and the Helm chart ship.

Run `python helm/dashboards/build.py` after changing a panel; a test checks that the JSON is this file's
output, and the real-Prometheus test (tests/test_grafana.py) evaluates every expression below and
compares it with what the runs did. Each expression is written once here.

Counting over the time range (`counted`): Prometheus' `increase()` does not count the first value of a
series born inside the range (a library's first run, a pod's first run), and stretches the rest to the
range's ends (10 moves can read 10.4). The job's counters never fall (a run-once run adds to the totals
its Pushgateway group holds; a service's counters fall only when it restarts), so the difference of a
series' values at the range's ends is its exact count, and a series born in the range counted from zero.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).with_name("immich-ext2int.json")
DS = {"type": "prometheus", "uid": "${datasource}"}
LIB = 'library=~"$library"'
MOVED = 'outcome=~"uploaded|merged"'
NOT_MOVED = 'outcome=~"held|skipped|failed|waiting"'


def sel(metric: str, *matchers: str) -> str:
    """A selector narrowed to the dashboard's chosen libraries."""
    return f"{metric}{{{','.join((*matchers, LIB))}}}"


def counted(series: str) -> str:
    """Per series: what it counted in the time range. Exact where Prometheus' increase() would estimate
    (it stretches a count to the range's ends): the difference of the values at the range's ends; a
    series born in the range counts from zero; only across a counter reset (a service restarted under the
    same address) is increase() left to estimate."""
    return (f"((({series} - {series} offset $__range) unless (resets({series}[$__range]) > 0))"
            f" or (increase({series}[$__range]) and {series} offset $__range)"
            f" or ({series} unless {series} offset $__range))")


def named(expr: str, by: str = "name, owner") -> str:
    """Per library expression -> per library name and owner (or per owner: `by="owner"`)."""
    return f"sum by ({by}) (({expr}) * on (library) group_left (name, owner) ext2int_library_info)"


MOVED_IN_RANGE = f"round(sum({counted(sel('ext2int_assets_total', MOVED))}))"
LEFT = f"(sum({sel('ext2int_remaining_assets')}) - sum({sel('ext2int_stuck_assets')}))"
STUCK = f"sum({sel('ext2int_stuck_assets')})"
PACE = f"(sum({sel('ext2int_last_run_assets', MOVED)}) / max(ext2int_last_run_interval_seconds))"  # assets per second
LIB_LEFT = f"{sel('ext2int_remaining_assets')} - ext2int_stuck_assets"
LIB_MOVED = f"round({counted(sel('ext2int_assets_total', MOVED))})"

PANELS = []  # (grid position, panel)


def panel(kind: str, title: str, description: str, targets: list[tuple[str, str]], grid: tuple[int, int, int, int],
          unit: str | None = None, decimals: int | None = 0, no_value: str | None = None, **more) -> dict:
    x, y, w, h = grid
    instant = kind != "timeseries"
    defaults: dict = {}
    if unit:
        defaults["unit"] = unit
    if decimals is not None:
        defaults["decimals"] = decimals
    if no_value:
        defaults["noValue"] = no_value
    defaults.update(more.pop("defaults", {}))
    p = {
        "id": len(PANELS) + 1, "type": kind, "title": title, "description": description, "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [{"datasource": DS, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + i),
                     **({"instant": True, "range": False} if instant else {}),
                     **({"format": "table"} if kind == "table" else {})}
                    for i, (expr, legend) in enumerate(targets)],
        "fieldConfig": {"defaults": defaults, "overrides": more.pop("overrides", [])},
    }
    if kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "none", "textMode": more.pop("text_mode", "auto"),
                        "justifyMode": "auto"}
    p.update(more)
    PANELS.append(p)
    return p


def text(value: str, shown: str) -> dict:
    return {"type": "value", "options": {value: {"text": shown, "index": 0}}}


# --- row 1: how far, how fast, when -----------------------------------------------------------------
panel("stat", "Done", "Assets moved in the time range, out of those and the assets left to move now. Set the "
      "time range to cover the whole migration (Prometheus keeps 15 days unless told otherwise).",
      [(f"{MOVED_IN_RANGE} / ({MOVED_IN_RANGE} + {LEFT})", "")], (0, 0, 4, 5),
      unit="percentunit", decimals=1, no_value="no run yet")
panel("stat", "Moved", "Assets moved into the internal library in the time range (a live photo's two halves and "
      "path twins count each).", [(MOVED_IN_RANGE, "")], (4, 0, 4, 5), no_value="0")
panel("stat", "Left to move", "External assets a run can still move (stuck ones not counted).", [(LEFT, "")],
      (8, 0, 4, 5), no_value="no run yet")
panel("stat", "Stuck until you act", "Assets the last run held (see 'why' below) or skipped for a lasting reason "
      "(offline, empty, kept...): they stay in their library until you act.", [(STUCK, "")], (12, 0, 4, 5),
      no_value="no run yet")
panel("stat", "Assets per hour", "The last run's moves over the time since the run before it ended: the pace of "
      "the migration as scheduled.", [(f"{PACE} * 3600", "")], (16, 0, 4, 5), no_value="after the second run")
panel("stat", "Estimated time to done", "What is left to move at the last run's pace. 'stalled': the last run "
      "moved nothing while assets are left.",
      [(f"({LEFT} == 0) or ({LEFT} / ({PACE} > 0))", ""), (f"({PACE} == 0) and ({LEFT} > 0)", "stalled")],
      (20, 0, 4, 5), unit="s", no_value="after the second run", defaults={"mappings": [text("0", "done")]},
      overrides=[{"matcher": {"id": "byFrameRefID", "options": "B"},
                  "properties": [{"id": "mappings", "value": [text("0", "stalled")]},
                                 {"id": "displayName", "value": "stalled"}]}])

# --- row 2: health -----------------------------------------------------------------------------------
panel("stat", "Since the last successful run", "Time since the last run that ended without a failed asset.",
      [("time() - max(ext2int_last_success_timestamp_seconds)", "")], (0, 5, 4, 4), unit="s",
      no_value="no successful run yet")
panel("stat", "Failing since", "Every run since this long ago failed (some asset failed, or the run could not "
      "start). Look at the job's log lines with outcome 'failed'.",
      [("time() - max(ext2int_failing_since_timestamp_seconds > 0)", "")], (4, 5, 4, 4), unit="s",
      no_value="not failing")
panel("stat", "Running now", "1 while a run is going.", [("max(ext2int_run_in_progress)", "")], (8, 5, 4, 4),
      no_value="no run yet", defaults={"mappings": [text("0", "no"), text("1", "yes")]})
panel("stat", "Bytes per second", "The last run's bytes over its wall time.",
      [("max(ext2int_last_run_bytes) / max(ext2int_last_run_duration_seconds > 0)", "")], (12, 5, 4, 4),
      unit="Bps", decimals=None, no_value="no run yet")
panel("stat", "Runs", "Runs ended in the time range: success, partial (some assets failed), error (could not "
      "start, or Immich failed it); skipped: a scheduled run found the previous one still going.",
      [(f"round(sum by (result) ({counted('ext2int_runs_total')}))", "{{result}}"),
       (f"round(sum({counted('ext2int_skipped_runs_total')}))", "skipped")], (16, 5, 8, 4),
      text_mode="value_and_name")

# --- row 3: per library, and why not ------------------------------------------------------------------
panel("table", "Per user", "Each user whose key the job holds (a family server: one key per user): left to move, "
      "stuck, moved in the time range, over their libraries.",
      [(named(LIB_LEFT, "owner"), ""), (named(sel("ext2int_stuck_assets"), "owner"), ""), (named(LIB_MOVED, "owner"), "")],
      (0, 9, 8, 8),
      transformations=[{"id": "merge", "options": {}},
                       {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": {
                           "owner": "User", "Value #A": "Left to move", "Value #B": "Stuck", "Value #C": "Moved"}}}])
panel("table", "Per library", "Each library by name and owner: left to move, stuck, moved in the time range.",
      [(named(LIB_LEFT), ""), (named(sel("ext2int_stuck_assets")), ""), (named(LIB_MOVED), "")], (8, 9, 8, 8),
      transformations=[{"id": "merge", "options": {}},
                       {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": {
                           "name": "Library", "owner": "Owner", "Value #A": "Left to move", "Value #B": "Stuck",
                           "Value #C": "Moved"}}}])
panel("table", "Not moved, and why (time range)", "Assets held, skipped, waiting or failed in the runs of the time "
      "range, by reason (a held or skipped asset is counted by every run that looks at it again).",
      [(f"round(sum by (outcome, reason) ({counted(sel('ext2int_assets_total', NOT_MOVED))})) > 0", "")],
      (16, 9, 8, 8), no_value="nothing",
      transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": {
          "outcome": "Outcome", "reason": "Reason (skip or hold reason, or the step that failed)", "Value": "Assets"}}}])

# --- row 4: over time ------------------------------------------------------------------------------
panel("timeseries", "Left to move per library", "External assets a run can still move, per library.",
      [(f"({LIB_LEFT}) * on (library) group_left (name) ext2int_library_info", "{{name}}")], (0, 17, 12, 8))
panel("timeseries", "Last run by outcome", "Assets per outcome in the last run.",
      [(f"sum by (outcome) ({sel('ext2int_last_run_assets')})", "{{outcome}}")], (12, 17, 12, 8))
panel("stat", "Moved bytes", "Bytes moved in the time range.", [(f"sum({counted('ext2int_bytes_total')})", "")],
      (0, 25, 6, 5), unit="bytes", decimals=None, no_value="0")
panel("stat", "Waiting for Immich", "Assets copied whose external original waits for Immich to finish (metadata, "
      "faces) before it is deleted: the next run finishes them.", [("sum(ext2int_waiting_assets)", "")],
      (6, 25, 6, 5), no_value="no run yet")
panel("stat", "Paused for Immich", "Seconds runs paused in the time range because Immich's queues were full.",
      [(f"sum({counted('ext2int_throttled_seconds_total')})", "")], (12, 25, 6, 5), unit="s", no_value="0")
panel("bargauge", "Step durations (p95, time range)", "95th percentile of each step of a move, over the time range (a step no move went through in the range is not shown).",
      [(f"histogram_quantile(0.95, sum by (le, step) ({counted('ext2int_step_duration_seconds_bucket')})) >= 0", "{{step}}")],
      (18, 25, 6, 5), unit="s", decimals=2, no_value="no move yet")
panel("timeseries", "Immich queue backlog", "Jobs waiting or active in Immich's heavy queues, as each run last saw "
      "them; runs pause above EXT2INT_QUEUE_THRESHOLD.", [("max(ext2int_immich_queue_backlog_jobs)", "backlog")],
      (0, 30, 18, 7))
panel("table", "Last verify and undo", "Copies the last `ext2int verify` found verified, changed since the move or "
      "damaged; moves the last `ext2int undo` took back, held or failed.",
      [("max by (command, outcome) (ext2int_audit_assets) > 0", "")], (18, 37, 6, 6), no_value="none yet",
      transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": {
          "command": "Command", "outcome": "Outcome", "Value": "Assets"}}}])
panel("table", "Versions", "immich-ext2int's version and the Immich server's.",
      [("max by (version, immich_version) (ext2int_build_info)", "")], (18, 30, 6, 7),
      transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}}])

DASHBOARD = {
    "__inputs": [], "annotations": {"list": []}, "editable": True, "graphTooltip": 1, "id": None,
    "uid": "immich-ext2int", "title": "immich-ext2int: external to internal migration",
    "description": "How far the move of external libraries into Immich's internal library is, how fast it goes, "
                   "what is held or failed and why, and when it will be done. Works for a CronJob that pushes to a "
                   "Pushgateway and for a Deployment that is scraped.",
    "tags": ["immich", "immich-ext2int"], "timezone": "browser", "schemaVersion": 39, "version": 3,
    "time": {"from": "now-30d", "to": "now"}, "refresh": "1m",
    "templating": {"list": [
        {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus", "current": {},
         "hide": 0, "refresh": 1},
        {"name": "library", "label": "Library", "type": "query", "datasource": DS,
         "query": {"query": "query_result(ext2int_library_info)", "refId": "L"},
         "definition": "query_result(ext2int_library_info)",
         "regex": '/library="(?<value>[^"]+)".*name="(?<text>[^"]+)"/', "multi": True, "includeAll": True,
         "allValue": ".*", "current": {}, "refresh": 2, "hide": 0, "sort": 1},
    ]},
    "panels": PANELS,
}


def render() -> str:
    return json.dumps(DASHBOARD, indent=1) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")

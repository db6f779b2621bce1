"""Service mode's schedule: cron parsing and time zones, one run at a time, runs skipped (and counted)
rather than stacked. Fires are forced and waited for as events: nothing waits for a minute to pass."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

from job.schedule import JOB_ID, build_scheduler, cron_trigger, next_fire_times


def test_next_fire_times_follow_the_cron_expression_in_its_time_zone():
    trigger = cron_trigger("30 2 * * *", "Europe/Paris")
    now = datetime(2026, 3, 28, 12, 0, tzinfo=timezone.utc)  # the night before summer time begins
    times = [t.astimezone(timezone.utc).isoformat() for t in next_fire_times(trigger, 3, now)]
    # 02:30 does not exist on 29 March in Paris: that night's run is at 03:30 summer time (01:30 UTC)
    assert times == ["2026-03-29T01:30:00+00:00", "2026-03-30T00:30:00+00:00", "2026-03-31T00:30:00+00:00"]


def test_weekday_schedules_and_utc_by_default():
    times = next_fire_times(cron_trigger("0 1 * * sat", None), 2, datetime(2026, 11, 25, tzinfo=timezone.utc))
    assert [t.isoformat() for t in times] == ["2026-11-28T01:00:00+00:00", "2026-12-05T01:00:00+00:00"]


def test_a_run_still_going_makes_the_next_one_skip_not_stack():
    running, release, skipped = threading.Event(), threading.Event(), threading.Event()
    runs, peak, skips = [], [0], []
    lock = threading.Lock()

    def slow_run() -> None:
        with lock:
            runs.append(1)
            peak[0] = max(peak[0], sum(runs))
        running.set()
        release.wait(10)
        with lock:
            runs[-1] = 0

    def on_skip() -> None:
        skips.append(1)
        skipped.set()

    scheduler = build_scheduler(cron_trigger("0 0 1 1 *", None), slow_run, on_skip, run_at_start=True, tz="UTC")
    scheduler.start()
    try:
        assert running.wait(10), "the first run started"
        scheduler.get_job(JOB_ID).modify(next_run_time=datetime.now(timezone.utc))  # the next fire is due now
        assert skipped.wait(10), "the due run was skipped while the first one still ran"
    finally:
        release.set()
        scheduler.shutdown(wait=True)
    assert peak[0] == 1 and len(runs) == 1, "never two runs at once"
    assert len(skips) == 1, "the skip was counted"


def test_run_at_start_runs_right_away():
    started = threading.Event()
    scheduler = build_scheduler(cron_trigger("0 0 1 1 *", None), started.set, lambda: None, run_at_start=True, tz=None)
    scheduler.start()
    try:
        assert started.wait(10)
    finally:
        scheduler.shutdown(wait=False)


def test_without_run_at_start_the_first_run_is_the_schedules_first_fire_time():
    trigger = cron_trigger("0 0 1 1 *", None)
    scheduler = build_scheduler(trigger, lambda: None, lambda: None, run_at_start=False, tz=None)
    scheduler.start(paused=True)
    try:
        first = scheduler.get_job(JOB_ID).next_run_time
    finally:
        scheduler.shutdown(wait=False)
    assert first == next_fire_times(trigger, 1)[0] and first > datetime.now(timezone.utc)

"""Service mode's schedule: cron parsing and time zones, one run at a time, runs skipped (and
counted) rather than stacked. Uses a sub-second trigger instead of waiting on real minutes."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

from apscheduler.triggers.interval import IntervalTrigger

from job.schedule import build_scheduler, cron_trigger, next_fire_times


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
    running = []
    peak = [0]
    starts = []
    skips = []
    lock = threading.Lock()

    def slow_run() -> None:
        with lock:
            running.append(1)
            peak[0] = max(peak[0], len(running))
            starts.append(time.monotonic())
        time.sleep(0.9)
        with lock:
            running.pop()

    scheduler = build_scheduler(IntervalTrigger(seconds=0.3), slow_run, lambda: skips.append(1), run_at_start=True, tz="UTC")
    scheduler.start()
    time.sleep(2.2)
    scheduler.shutdown(wait=True)
    assert peak[0] == 1, "two runs at once"
    assert len(skips) >= 2, "overlapping fires are skipped and counted"
    assert 2 <= len(starts) <= 3


def test_run_at_start_runs_right_away():
    started = threading.Event()
    scheduler = build_scheduler(cron_trigger("0 0 1 1 *", None), started.set, lambda: None, run_at_start=True, tz=None)
    scheduler.start()
    try:
        assert started.wait(5)
    finally:
        scheduler.shutdown(wait=False)


def test_without_run_at_start_nothing_runs_before_the_first_fire_time():
    started = threading.Event()
    scheduler = build_scheduler(cron_trigger("0 0 1 1 *", None), started.set, lambda: None, run_at_start=False, tz=None)
    scheduler.start()
    try:
        assert not started.wait(0.5)
    finally:
        scheduler.shutdown(wait=False)

"""Service mode: APScheduler 3 fires runs on EXT2INT_SCHEDULE (cron), one at a time.

A run still going when the next is due is not stacked: APScheduler refuses the second instance
(max_instances=1), and we count the refusal (ext2int_skipped_runs_total) and log it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

log = logging.getLogger("ext2int")
JOB_ID = "migrate"


def cron_trigger(expression: str, tz: str | None) -> CronTrigger:
    return CronTrigger.from_crontab(expression, timezone=ZoneInfo(tz or "UTC"))


def next_fire_times(trigger: BaseTrigger, count: int = 3, now: datetime | None = None) -> list[datetime]:
    now = now or datetime.now(timezone.utc)
    times: list[datetime] = []
    previous = None
    while len(times) < count:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        times.append(fire)
        previous, now = fire, fire
    return times


def build_scheduler(trigger: BaseTrigger, run: Callable[[], None], on_skip: Callable[[], None], *,
                    run_at_start: bool, tz: str | None) -> BackgroundScheduler:
    """A scheduler with one job; `run_at_start` makes its first run now, then it follows the trigger."""
    scheduler = BackgroundScheduler(timezone=ZoneInfo(tz or "UTC"))

    def skipped(event: JobExecutionEvent) -> None:
        if event.job_id == JOB_ID:
            log.warning("scheduled run skipped: the previous run is still going")
            on_skip()

    scheduler.add_listener(skipped, EVENT_JOB_MAX_INSTANCES)
    options = {"next_run_time": datetime.now(timezone.utc)} if run_at_start else {}
    scheduler.add_job(run, trigger, id=JOB_ID, max_instances=1, coalesce=True, misfire_grace_time=3600, **options)
    return scheduler

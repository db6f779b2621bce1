"""The command line: `ext2int [run|plan|libraries|serve]`, configured by environment variables only.
The only module that prints to the terminal or decides exit codes (see README, "Exit codes")."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any

from job import __version__, logs
from job.clock import SYSTEM, Clock
from job.immich import errors
from job.immich.client import ImmichClient
from job.immich.http import Transport
from job.metrics import Metrics
from job.report import Report
from job.run import planner
from job.run.runner import Runner
from job.run.session import (
    ConfigurationError, check_permissions, connect, describe_library, resolve_libraries, scope_of, visible_libraries,
)
from job.settings import Settings, SettingsError, load_settings
from job.terminal import Progress, emit_summary, observer_for

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_UNREACHABLE = 0, 1, 2, 3
log = logging.getLogger("ext2int")

DESCRIPTION = """\
Move assets from Immich external libraries into the internal library, proving every byte and every
piece of curated metadata before deleting the external asset.

commands:
  run        one batch, then exit (or run on EXT2INT_SCHEDULE when it is set)
  plan       what `run` would do, changing nothing
  libraries  the libraries this API key can see, and whether it may migrate them
  serve      stay up, run on EXT2INT_SCHEDULE, serve /metrics

Configuration comes from environment variables only (IMMICH_URL, IMMICH_API_KEY, EXT2INT_*): see README.md.
exit codes: 0 done, 1 some assets failed, 2 configuration or usage error, 3 server unreachable, not
Immich, too old, or the key refused."""


def main(argv: list[str] | None = None, clock: Clock = SYSTEM) -> int:
    """`clock` is the seam through which tests pass time (see job/clock.py)."""
    parser = argparse.ArgumentParser(prog="ext2int", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="run", choices=["run", "plan", "libraries", "serve"])
    parser.add_argument("--version", action="version", version=f"immich-ext2int {__version__}")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        for line in exc.lines:
            print(f"ext2int: {line}", file=sys.stderr)
        return EXIT_CONFIG
    logs.setup(settings.log_format, settings.log_level, settings.key)
    if args.command == "serve" or (args.command == "run" and settings.schedule):
        return serve(settings, clock)
    if args.command == "libraries":
        return list_libraries(settings)
    metrics = Metrics()
    runner_box: list[Runner] = []
    install_signals(runner_box, settings)
    result = execute(settings, args.command, metrics, runner_box, clock)
    if isinstance(result, int):
        return result
    report, requests = result
    if args.command == "run":
        metrics.record_run(report, requests)
        if settings.pushgateway_url:
            try:
                metrics.push(settings.pushgateway_url, report.libraries)
            except Exception as exc:  # a metrics outage must not fail the migration
                log.warning("could not push metrics to %s: %s", settings.pushgateway_url, exc)
    code = report.exit_code()
    if report.server_failed:
        print(f"ext2int: {report.stopped_because}", file=sys.stderr)
    if runner_box and runner_box[0].abandoned:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # workers cut off by the shutdown grace must not hold the exit
    return code


# --- one run ---------------------------------------------------------------------------------------


def open_client(settings: Settings, read_only: bool, clock: Clock = SYSTEM) -> ImmichClient:
    transport = Transport(
        settings.immich_url, settings.key, read_only=read_only, timeout=settings.http_timeout,
        retries=settings.http_retries, pool_size=settings.pools.connections,
        user_agent=f"immich-ext2int/{__version__}", clock=clock,
    )
    return ImmichClient(transport)


def execute(settings: Settings, command: str, metrics: Metrics, runner_box: list[Runner],
            clock: Clock = SYSTEM) -> tuple[Report, int] | int:
    """Run `run` or `plan` once; returns (report, requests sent) or an exit code when it could not start."""
    client = open_client(settings, read_only=command == "plan", clock=clock)
    scrub = client.t.scrub
    try:
        session = connect(client)
        metrics.server_version(str(session.caps.version))
        check_permissions(session, command, settings.delete)
        visible = visible_libraries(session)
        libraries = resolve_libraries(session, [str(i) for i in settings.library_ids], visible)
        if not libraries:
            print("ext2int: this API key's user owns no external library; nothing to do "
                  "(`ext2int libraries` lists what the key can see)", file=sys.stderr)
            return EXIT_OK
        progress = Progress.maybe(settings)
        runner = Runner(session, libraries, settings, scope_of(session, libraries, visible, settings),
                        observer_for(metrics, progress), clock)
        runner_box[:] = [runner]
        log.info("%s: %d librar%s on Immich %s as %s; delete mode %s", command, len(libraries),
                 "y" if len(libraries) == 1 else "ies", session.caps.version, session.user.email or session.user.id,
                 settings.delete.value)
        if command == "plan":
            report = planner.plan(runner)
        else:
            if progress:
                progress.start(min(settings.batch_size, sum(runner.remaining().values())))
            metrics.running.set(1)
            try:
                report = runner.run()
            finally:
                metrics.running.set(0)
        if progress:
            progress.close()
    except ConfigurationError as exc:
        print(f"ext2int: {scrub(str(exc))}", file=sys.stderr)
        return EXIT_CONFIG
    except errors.ImmichError as exc:
        print(f"ext2int: {scrub(str(exc))}", file=sys.stderr)
        metrics.record_error()
        return startup_exit_code(exc)
    finally:
        client.close()
    report.requests = {"total": client.t.total_requests, "mutating": client.t.mutating_requests}
    for outcome in report.outcomes:
        outcome.reason = scrub(outcome.reason)
        outcome.differences = [scrub(d) for d in outcome.differences]
    emit_summary(report, settings, command)
    return report, client.t.total_requests


def startup_exit_code(exc: errors.ImmichError) -> int:
    """Before any asset is touched, a server that errs, says 'not found' or answers oddly is not a
    usable Immich (3); a missing permission is the key's (1)."""
    if isinstance(exc, errors.PermissionMissing):
        return EXIT_FAILED
    return EXIT_UNREACHABLE


def install_signals(runner_box: list[Runner], settings: Settings, on_first=None) -> None:
    """First SIGTERM/SIGINT: take no new assets, let those in flight finish within the grace period.
    Second: exit at once (a move cut anywhere is completed by the next run)."""
    first = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if first.is_set():
            log.warning("%s again: exiting now; the next run completes what was in flight", name)
            os._exit(128 + signum)
        first.set()
        log.warning("%s: finishing the assets in flight (up to %.0fs), taking no new ones", name, settings.shutdown_grace)
        for runner in runner_box:
            runner.request_stop(name)
        if on_first:
            on_first()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


# --- libraries -------------------------------------------------------------------------------------


def list_libraries(settings: Settings) -> int:
    client = open_client(settings, read_only=True)
    try:
        session = connect(client)
        libraries = visible_libraries(session)
        if libraries is None:
            libraries = resolve_libraries(session, [str(i) for i in settings.library_ids], None)
            print("(not an admin key: showing the external libraries of your own assets)")
        rows = []
        for library in libraries:
            row = describe_library(session, library)
            try:
                row["assets"] = client.count_assets(library.id) if row["migratable"] else None
            except errors.ImmichError:
                row["assets"] = None
            rows.append(row)
    except (errors.ImmichError, ConfigurationError) as exc:
        print(f"ext2int: {client.t.scrub(str(exc))}", file=sys.stderr)
        return startup_exit_code(exc) if isinstance(exc, errors.ImmichError) else EXIT_CONFIG
    finally:
        client.close()
    print(f"{'id':<36}  {'assets':>7}  {'migratable':<10}  name (owner)")
    for row in rows:
        count = "-" if row["assets"] is None else str(row["assets"])
        mine = "yes" if row["migratable"] else "no: owner's key needed"
        print(f"{row['id']:<36}  {count:>7}  {mine:<10}  {row['name']} ({row['ownerId']})")
    return EXIT_OK


# --- service mode ----------------------------------------------------------------------------------


def serve(settings: Settings, clock: Clock = SYSTEM) -> int:
    from job.schedule import build_scheduler, cron_trigger, next_fire_times

    if not settings.schedule:
        print("ext2int: EXT2INT_SCHEDULE is not set: serve needs a cron expression, for example '30 2 * * *'", file=sys.stderr)
        return EXIT_CONFIG
    metrics = Metrics()
    server = metrics.serve(settings.metrics_port, settings.metrics_addr)
    runner_box: list[Runner] = []
    stopping = threading.Event()
    busy = threading.Lock()

    def one_run() -> None:
        if stopping.is_set():
            return
        with busy:
            result = execute(settings, "run", metrics, runner_box, clock)
            if isinstance(result, tuple):
                report, requests = result
                metrics.record_run(report, requests)
            runner_box.clear()

    trigger = cron_trigger(settings.schedule, settings.timezone)
    scheduler = build_scheduler(trigger, one_run, metrics.skipped_runs.inc, run_at_start=settings.run_at_start,
                                tz=settings.timezone)
    install_signals(runner_box, settings, on_first=stopping.set)
    upcoming = ", ".join(t.isoformat() for t in next_fire_times(trigger))
    log.info("serving /metrics on %s:%d; schedule '%s' (%s); next runs: %s", settings.metrics_addr, settings.metrics_port,
             settings.schedule, settings.timezone or "UTC", upcoming,
             extra={"event": "schedule", "nextRuns": upcoming})
    scheduler.start()
    try:
        while not stopping.wait(1.0):
            pass
    finally:
        scheduler.shutdown(wait=False)
        deadline = clock.monotonic() + settings.shutdown_grace + 5
        while busy.locked() and clock.monotonic() < deadline:
            clock.sleep(0.2)
        if isinstance(server, tuple):
            server[0].shutdown()
    return EXIT_OK

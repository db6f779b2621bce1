"""The command line: `ext2int [COMMAND]` (the commands: job/commands.py), configured by environment
variables only: where each command starts, where its report and metrics are handed on (job/terminal.py
prints and logs them), and where its exit code is decided (see README, "Exit codes")."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import replace

from job import __version__, logs, secrets
from job.commands import Command
from job.clock import SYSTEM, Clock
from job.decide import sharing
from job.immich import errors
from job.immich.client import ImmichClient
from job.immich.http import Transport
from job.metrics import Gateway, Metrics
from job.report import Report
from job.run import audit, planner, undoer
from job.run.runner import Runner
from job.run.crew import assemble
from job.run.signals import Signals
from job.run.session import ConfigurationError
from job.settings import Settings, SettingsError, load_settings
from job.terminal import Progress, emit_summary, observer_for

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_UNREACHABLE = 0, 1, 2, 3
log = logging.getLogger("ext2int")

DESCRIPTION = """\
Move assets from Immich external libraries into the internal library, proving every byte and every
piece of curated metadata before deleting the external asset.

commands:
{commands}

Configuration comes from environment variables only (IMMICH_URL, IMMICH_API_KEY, EXT2INT_*): see README.md.
exit codes: 0 done, 1 some assets failed (verify: some copy is damaged), 2 configuration or usage error,
3 server unreachable, not Immich, too old, or the key refused.""".format(
    commands="\n".join(f"  {c.value:<10} {c.text}" for c in Command if c.text))


def main(argv: list[str] | None = None, clock: Clock = SYSTEM) -> int:
    """`clock` is the seam through which tests pass time (see job/clock.py). Everything runs inside the
    secrets guard (job/secrets.py): no output of any kind holds the API key or a URL's password."""
    parser = argparse.ArgumentParser(prog="ext2int", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default=Command.RUN.value, choices=[c.value for c in Command])
    parser.add_argument("--version", action="version", version=f"immich-ext2int {__version__}")
    args = parser.parse_args(argv)
    with secrets.guarded(os.environ):
        try:
            return command(Command(args.command), clock)
        except Exception as exc:  # a bug: one line, and where it happened at DEBUG, never a traceback's secrets
            log.debug("unexpected error", exc_info=True)
            print(f"ext2int: unexpected error: {type(exc).__name__}: {exc} (a bug in ext2int: please report it; "
                  "EXT2INT_LOG_LEVEL=DEBUG shows where it happened)", file=sys.stderr)
            return EXIT_FAILED


def command(name: Command, clock: Clock) -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        for line in exc.lines:
            print(f"ext2int: {line}", file=sys.stderr)
        return EXIT_CONFIG
    logs.setup(settings.log_format, settings.log_level)
    if name is Command.SERVE or (name is Command.RUN and settings.schedule):
        return serve(settings, clock)
    if name is Command.LIBRARIES:
        return list_libraries(settings)
    metrics = Metrics()
    signals = Signals(settings)
    gateway = gateway_for(settings, metrics) if name is Command.RUN or name.audit else None
    if name is Command.RUN:
        push(gateway, lambda: gateway.running())
    result = execute(settings, name, metrics, signals, clock)
    if name is Command.RUN:
        push(gateway, lambda: gateway.replace(metrics.exposed))  # a run that could not start is a run Grafana should see
    elif not isinstance(result, int):
        push(gateway, lambda: gateway.add(metrics.audit_registry()))  # the runs' metrics stay as they are
    if isinstance(result, int):
        return result
    report = result
    code = report.exit_code()
    if report.server_failed:
        print(f"ext2int: {report.stopped_because}", file=sys.stderr)
    if signals.abandoned():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # workers cut off by the shutdown grace must not hold the exit
    return code


def gateway_for(settings: Settings, metrics: Metrics) -> Gateway | None:
    """The job's Pushgateway group, its totals carried into `metrics`; None when no Pushgateway is set,
    or when its group cannot be read (pushing then would reset the totals it holds)."""
    if not settings.pushgateway_url:
        return None
    gateway = Gateway(settings.pushgateway_url)
    try:
        metrics.carry(gateway.read())
    except Exception as exc:  # a metrics outage must not fail the migration
        log.warning("could not read this job's totals from the Pushgateway at %s (%s): this run's metrics are not "
                    "pushed, so that the totals there stay right", gateway.url, exc)
        return None
    return gateway


def push(gateway: Gateway | None, send: Callable[[], None]) -> None:
    if gateway is not None:
        try:
            send()
        except Exception as exc:  # a metrics outage must not fail the migration
            log.warning("could not push metrics to the Pushgateway at %s: %s", gateway.url, exc)


# --- one run ---------------------------------------------------------------------------------------


def open_client(settings: Settings, key: str, read_only: bool, clock: Clock = SYSTEM) -> ImmichClient:
    transport = Transport(
        settings.immich_url, key, read_only=read_only, timeout=settings.http_timeout,
        retries=settings.http_retries, pool_size=settings.pools.connections,
        user_agent=f"immich-ext2int/{__version__}", clock=clock,
    )
    return ImmichClient(transport)


def execute(settings: Settings, command: Command, metrics: Metrics, signals: Signals, clock: Clock = SYSTEM) -> Report | int:
    """Run `run` or `plan` once; returns the report, or an exit code when it could not start. A run,
    whatever its end, is recorded in `metrics` before its summary line is logged."""
    crew = None
    try:
        crew = assemble(settings, command, lambda key: open_client(settings, key, read_only=command.read_only, clock=clock))
        metrics.server_version(str(crew.lead.caps.version))
        for problem in crew.problems:
            print(f"ext2int: {problem}", file=sys.stderr)
        libraries = crew.libraries
        if not libraries:
            whose = "the users of these API keys own" if len(crew.keyholders) > 1 else "this API key's user owns"
            print(f"ext2int: {whose} no external library; nothing to do (`ext2int libraries` lists what a key can see)",
                  file=sys.stderr)
            if command is Command.RUN:
                metrics.record_run(Report(command=command, key_problems=len(crew.problems)))
            return EXIT_FAILED if crew.problems else EXIT_OK
        if command is Command.RUN:
            metrics.prepare(libraries, crew.keyholders[0].scope.owners)
        progress = Progress.maybe(settings)
        owners = {lib.id: k.name for k in crew.keyholders for lib in k.libraries}
        runner = Runner(crew, settings, observer_for(metrics, progress, owners), clock)
        signals.attach(runner)
        log.info("%s: %d librar%s on Immich %s, for %s; delete mode %s", command, len(libraries),
                 "y" if len(libraries) == 1 else "ies", crew.lead.caps.version,
                 ", ".join(f"{k.name} (key {k.session.key_name}, {len(k.libraries)} librar{'y' if len(k.libraries) == 1 else 'ies'})"
                           for k in crew.keyholders), settings.delete.value)
        if command is Command.PLAN:
            report = planner.plan(runner)
        elif command is Command.VERIFY:
            report = audit.verify(runner)
        elif command in (Command.UNDO, Command.UNDO_PLAN):
            report = undoer.undo(runner, dry_run=command is Command.UNDO_PLAN)
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
        print(f"ext2int: {exc}", file=sys.stderr)
        if command is Command.RUN:
            metrics.record_error()
        return EXIT_CONFIG
    except errors.ImmichError as exc:
        print(f"ext2int: {exc}", file=sys.stderr)
        if command is Command.RUN:
            metrics.record_error()
        return startup_exit_code(exc)
    finally:
        if crew is not None:
            crew.close()
    transports = [k.session.client.t for k in crew.keyholders]
    report.requests = {"total": sum(t.total_requests for t in transports), "mutating": sum(t.mutating_requests for t in transports),
                       "claimRenewals": report.claim_renewals, "byRoute": _by_route(transports)}
    if command is Command.RUN:
        metrics.record_run(report, report.requests["total"])
    elif command.audit:
        metrics.record_audit(report)
    emit_summary(report, settings, command)
    return report


def _by_route(transports: list[Transport]) -> dict[str, dict[str, float]]:
    total: dict[str, dict[str, float]] = {}
    for transport in transports:
        for route, seen in transport.by_route().items():
            mine = total.setdefault(route, {"count": 0, "seconds": 0.0})
            mine["count"] += seen["count"]
            mine["seconds"] = round(mine["seconds"] + seen["seconds"], 3)
    return dict(sorted(total.items(), key=lambda kv: -kv[1]["count"]))


def startup_exit_code(exc: errors.ImmichError) -> int:
    """Before any asset is touched, a server that errs, says 'not found' or answers oddly is not a
    usable Immich (3); a missing permission is the key's (1)."""
    if isinstance(exc, errors.PermissionMissing):
        return EXIT_FAILED
    return EXIT_UNREACHABLE


# --- libraries -------------------------------------------------------------------------------------


def list_libraries(settings: Settings) -> int:
    """Every library a key can see (an admin's key: all of them), whose it is, and whether this run
    holds the owner's key, so may migrate it."""
    crew = None
    try:
        crew = assemble(settings, Command.LIBRARIES, lambda key: open_client(settings, key, read_only=True))
        for problem in crew.problems:
            print(f"ext2int: {problem}", file=sys.stderr)
        if crew.visible is None:
            print("(no admin key: showing the external libraries of the keys' own assets)")
        libraries = crew.visible if crew.visible is not None else crew.libraries
        owners = crew.keyholders[0].scope.owners
        rows = []
        for library in libraries:
            keyholder = next((k for k in crew.keyholders if k.user_id == library.ownerId), None)
            try:
                count = keyholder.session.client.count_assets(library.id) if keyholder else None
            except errors.ImmichError:
                count = None
            rows.append((library, keyholder, count))
    except (errors.ImmichError, ConfigurationError) as exc:
        print(f"ext2int: {exc}", file=sys.stderr)
        return startup_exit_code(exc) if isinstance(exc, errors.ImmichError) else EXIT_CONFIG
    finally:
        if crew is not None:
            crew.close()
    print(f"{'id':<36}  {'assets':>7}  {'migratable':<10}  name (owner)")
    for library, keyholder, count in rows:
        mine = "yes" if keyholder else "no: owner's key needed"
        shown = "-" if count is None else str(count)
        print(f"{library.id:<36}  {shown:>7}  {mine:<10}  {library.name} ({owners.get(library.ownerId, library.ownerId)})")
    for line in sharing(replace(crew.keyholders[0].scope, libraries=tuple(libraries))):
        print(f"shared: {line}")
    return EXIT_OK


# --- service mode ----------------------------------------------------------------------------------


def serve(settings: Settings, clock: Clock = SYSTEM) -> int:
    from job.schedule import build_scheduler, cron_trigger, next_fire_times

    if not settings.schedule:
        print("ext2int: EXT2INT_SCHEDULE is not set: serve needs a cron expression, for example '30 2 * * *'", file=sys.stderr)
        return EXIT_CONFIG
    metrics = Metrics()
    server = metrics.serve(settings.metrics_port, settings.metrics_addr)
    stopping = threading.Event()
    signals = Signals(settings, on_first=stopping.set)
    busy = threading.Lock()

    def one_run() -> None:
        if stopping.is_set():
            return
        with busy:
            execute(settings, Command.RUN, metrics, signals, clock)
            signals.forget_runs()

    trigger = cron_trigger(settings.schedule, settings.timezone)
    scheduler = build_scheduler(trigger, one_run, metrics.skipped_runs.inc, run_at_start=settings.run_at_start,
                                tz=settings.timezone)
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

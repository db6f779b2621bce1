"""What a person reads on a terminal: log lines above the progress bar, never glued onto it; names, not
ids; a batch limit as the normal end of a run; sizes a person reads; a plan that says what would happen."""

from __future__ import annotations

import re

LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (INFO|WARNING|ERROR|DEBUG)\s")


def screen_lines(stderr: str) -> list[str]:
    """What stays on each line of a terminal: a carriage return goes back to the start of the line."""
    return [line.rsplit("\r", 1)[-1] for line in stderr.split("\n")]


def test_log_lines_are_written_above_the_progress_bar(scene, run_job):
    lib = scene.library("Family photos")
    for i in range(4):
        scene.photo(lib, f"p{i}.jpg", size=200_000)
    result = run_job(scene.env(EXT2INT_PROGRESS="on", EXT2INT_LOG_FORMAT="text"))
    assert result.code == 0
    assert "asset/s]" in result.stderr, "the bar was drawn"
    logged = [line for line in result.stderr.split("\n") if re.search(r"\d\d:\d\d:\d\d (INFO|WARNING)", line)]
    assert len(logged) >= 5, "one line per asset and the summary"
    for line in logged:
        shown = line.rsplit("\r", 1)[-1]
        assert LOG_LINE.match(shown), f"a log line glued onto the bar: {line!r}"


def test_a_batch_limit_is_the_normal_end_of_a_run_and_sizes_and_names_read_well(scene, run_job, monkeypatch):
    lib = scene.library("Family photos")
    for i in range(3):
        scene.photo(lib, f"p{i}.jpg", size=1_500_000)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True, raising=False)
    result = run_job(scene.env(EXT2INT_BATCH_SIZE="2", EXT2INT_CONCURRENCY="1"))
    assert result.code == 0 and result.report["stoppedAtLimit"] is True
    out = result.stdout
    assert "stopped early" not in out
    assert "this run's share is done (EXT2INT_BATCH_SIZE (2) reached); the next run goes on" in out
    assert "2.9 MiB" in out, "a size a person reads"
    assert "remaining: Family photos: 1" in out and lib.id not in out, "the library by its name"


def test_a_signal_is_not_a_limit(scene, run_job):
    from job.report import Report

    report = Report(command="run", stopped_because="stopped by SIGTERM")
    assert "stopped early: stopped by SIGTERM" in list(report.text_lines())


def test_plan_says_what_would_happen(scene, run_job):
    lib = scene.library("Family photos")
    for i in range(3):
        scene.photo(lib, f"p{i}.jpg", size=1_048_576)
    scene.photo(lib, "gone.jpg").is_offline = True
    result = run_job(scene.env(), command="plan")
    assert result.code == 0
    headline = next(line for line in result.stdout.splitlines() if line.startswith("plan: "))
    assert headline.startswith("plan: would move 3 assets") and "3.0 MiB" in headline and "1 skipped" in headline


def test_libraries_names_each_library_and_its_owner(scene, run_job):
    scene.library("Family photos")
    scene.library("Their photos", owner=scene.other)
    result = run_job(scene.env(), command="libraries")
    assert result.code == 0
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert any("Family photos (Admin)" in row and " yes " in row for row in rows.values())
    assert any("Their photos (Other)" in row and "owner's key needed" in row for row in rows.values())
    assert scene.admin.id not in result.stdout and scene.other.id not in result.stdout

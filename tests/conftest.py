"""Fixtures: a fake Immich per test, a scene builder, and ways to run the real job against it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from tests.fake_immich import FakeImmich, Scene

ROOT = Path(__file__).resolve().parent.parent
CANARY = "ext2int-CANARY-key-0b4f6e"  # an API key that must never appear in any output
# seconds later than a killed run: its claims (EXT2INT_CLAIM_TTL, 2 min past their last renewal) have expired, so
# the next run, a few minutes after a crash, moves what the dead one left
CLAIMS_EXPIRED = 150.0

# Hypothesis caches what it parsed from source files under ./.hypothesis: keep the source tree clean
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "immich-ext2int-hypothesis")


def pytest_collection_modifyitems(items):
    """The end-to-end tests run last: in CI the real server builds while the other tests run."""
    items.sort(key=lambda item: "/e2e/" in str(item.fspath))


@pytest.fixture
def fake():
    server = FakeImmich().start()
    yield server
    server.stop()


@pytest.fixture
def scene(fake) -> Scene:
    return Scene(fake)


@pytest.fixture
def canary(scene):
    """A library of one photo, moved with an API key that must never appear in any output (CANARY)."""
    scene.world.add_key(scene.admin, secret=CANARY)
    lib = scene.library()
    scene.photo(lib, "a.jpg")
    return lib


@dataclass
class JobResult:
    code: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None

    def counts(self) -> dict[str, int]:
        return self.report["counts"] if self.report else {}

    def outcomes(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [o for o in (self.report or {}).get("outcomes", []) if kind is None or o["kind"] == kind]


@pytest.fixture
def run_job(tmp_path, monkeypatch, capsys):
    """Run `ext2int <command>` in this process with exactly `env` (plus a report path)."""
    counter = [0]

    def run(env: dict[str, str], command: str = "run", clock=None) -> JobResult:
        """`clock`: the job's time (tests/clock.py), e.g. Later(CLAIMS_EXPIRED) after a killed run."""
        from job import cli
        from job.clock import SYSTEM

        counter[0] += 1
        report = tmp_path / f"report-{counter[0]}.json"
        for name in list(os.environ):
            if name.startswith(("IMMICH_", "EXT2INT_")) or name == "TZ":
                monkeypatch.delenv(name)
        for name, value in {"EXT2INT_REPORT": str(report), **env}.items():
            monkeypatch.setenv(name, value)
        handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            code = cli.main([command], clock=clock or SYSTEM)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
        out = capsys.readouterr()
        data = json.loads(report.read_text()) if report.exists() else None
        return JobResult(code, out.out, out.err, data)

    return run


def spawn_job(env: dict[str, str], command: str = "run", **kwargs) -> subprocess.Popen:
    """The real `ext2int` in a subprocess (for kills and signals)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("IMMICH_", "EXT2INT_"))}
    full.update(env)
    full["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen([sys.executable, "-m", "job", command], env=full, cwd=str(ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)

"""The run's account. Every listed asset ends in exactly one Outcome; the report is built from them and
rendered as text (terminal) or JSON (EXT2INT_REPORT). Counts add up to what was listed: an asset that
never reached an outcome is itself reported, as 'failed' at stage 'incomplete'."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator

from job import secrets
from job.commands import Command
from job.outcome import KINDS, Kind, Outcome


@dataclass
class Report:
    command: Command
    started: float = field(default_factory=time.time)
    finished: float | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    listed: int = 0
    remaining: dict[str, int] = field(default_factory=dict)  # per library, after the run
    throttled_seconds: float = 0.0
    stopped_because: str = ""  # limit reached, signal, back-pressure...
    at_limit: bool = False  # stopped because a limit was reached: the normal end of a run
    server_failed: bool = False  # stopped because Immich failed a listing: the run's exit code is 3
    server_version: str = ""
    delete_mode: str = ""
    libraries: list[str] = field(default_factory=list)
    library_names: dict[str, str] = field(default_factory=dict)
    library_owners: dict[str, str] = field(default_factory=dict)  # library id -> its owner's name
    key_problems: int = 0  # keys that could not be used (their users' parts stopped; the notes say why)
    notes: list[str] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)  # sent to Immich: total, mutating
    claim_renewals: int = 0  # requests that renewed the claims of units in flight (job/move/held.py)
    trash: dict[str, int] = field(default_factory=dict)  # the trash watch: looked, proven, checked, restored
    run_id: str = ""  # names this run in the journals and provenance it writes
    albums_touched: int = 0  # plan: albums holding an asset that would move
    live_photos: int = 0  # plan: live photos (a still and its video) that would move

    def __post_init__(self) -> None:
        self.command = Command(self.command)

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def finish(self) -> None:
        self.finished = time.time()

    @property
    def duration(self) -> float:
        return (self.finished or time.time()) - self.started

    def counts(self) -> Counter[str]:
        return Counter(o.kind.value for o in self.outcomes)

    def assets(self, kind: Kind) -> int:
        return sum(o.assets for o in self.outcomes if o.kind is kind)

    @property
    def moved_assets(self) -> int:
        return sum(o.assets for o in self.outcomes if KINDS[o.kind].final)

    @property
    def moved_bytes(self) -> int:
        return sum(o.bytes for o in self.outcomes if KINDS[o.kind].final)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind is Kind.FAILED]

    def exit_code(self) -> int:
        """0 all done, 1 some assets failed or a key could not be used, 3 Immich failed a call the whole run
        depends on (see cli)."""
        damaged = any(o.kind is Kind.DAMAGED for o in self.outcomes)
        return 3 if self.server_failed else 1 if self.failed or self.key_problems or damaged else 0

    # --- rendering ------------------------------------------------------------------------------

    def library_label(self, library_id: str) -> str:
        """A library by name, and by its owner's too when the run moved several users' libraries."""
        name = self.library_names.get(library_id, library_id)
        if len(set(self.library_owners.values())) > 1 and library_id in self.library_owners:
            return f"{self.library_owners[library_id]}'s {name}"
        return name

    def to_dict(self) -> dict[str, Any]:
        return {**self._summary_dict(), "outcomes": [_outcome_dict(o) for o in self.outcomes]}

    @staticmethod
    def _tally(counts: Counter[str], *kinds: Kind) -> str:
        """'3 held, 1 waiting': each kind's count and its words (job/outcome.py, KINDS)."""
        return ", ".join(f"{counts.get(k.value, 0)} {KINDS[k].text}" for k in kinds)

    def _summary_dict(self) -> dict[str, Any]:
        counts = self.counts()
        return {
            "command": self.command.value,
            "run": self.run_id,
            "started": _iso(self.started),
            "finished": _iso(self.finished) if self.finished else None,
            "durationSeconds": round(self.duration, 3),
            "serverVersion": self.server_version,
            "deleteMode": self.delete_mode,
            "libraries": self.libraries,
            "libraryNames": self.library_names,
            "libraryOwners": self.library_owners,
            "listed": self.listed,
            "counts": {k.value: counts.get(k.value, 0) for k in Kind},
            "assetsMoved": self.moved_assets,
            "bytesMoved": self.moved_bytes,
            "remaining": self.remaining,
            "throttledSeconds": round(self.throttled_seconds, 3),
            "stoppedBecause": self.stopped_because,
            "stoppedAtLimit": self.at_limit,
            "notes": self.notes,
            "requests": self.requests,
            "trashWatch": self.trash,
        }

    def write_json(self, path: Path) -> None:
        """Atomically (a reader never sees half a report), and one outcome at a time: the report of a
        100k-asset plan is never held in memory as a whole. The file is the same as `to_dict()`'s."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".report-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                out = secrets.scrubbing(file)  # the report is an output like any other: no secret in it
                head = json.dumps(self._summary_dict(), indent=2)
                out.write(head[:-2] + ',\n  "outcomes": [')  # reopen the object just before its closing brace
                for i, outcome in enumerate(self.outcomes):
                    # one line per outcome: greppable, and json's C encoder (indent would use the slow one)
                    out.write(("," if i else "") + "\n    " + json.dumps(_outcome_dict(outcome)))
                out.write("\n  ]\n}\n" if self.outcomes else "]\n}\n")
        except BaseException:
            os.unlink(tmp)
            raise
        os.replace(tmp, path)

    def text_lines(self) -> Iterator[str]:
        """The terminal summary, line by line (a plan prints one line per asset)."""
        counts = self.counts()
        if self.command is Command.PLAN:
            yield f"Plan ({len(self.outcomes)} items, {self.listed} assets listed; nothing was changed):"
            for o in self.outcomes:
                yield f"  {o.plan or o.kind.value:<44} {o.path}"
                for detail in o.differences:
                    yield f"      {detail}"
                for note in o.cannot_move:
                    yield f"      cannot move: {note}"
            planned = [o for o in self.outcomes if o.kind is Kind.PLANNED]
            yield (f"plan: would move {sum(o.assets for o in planned)} assets ({len(planned)} items, "
                   f"{self.live_photos} live photos), "
                   f"{human_bytes(sum(o.bytes for o in planned))}, touching {self.albums_touched} albums; "
                   f"{counts.get('held', 0)} held, {counts.get('skipped', 0)} skipped")
        elif self.command is Command.VERIFY:
            yield "verify: " + self._tally(counts, Kind.VERIFIED, Kind.CHANGED, Kind.DAMAGED)
        elif self.command in (Command.UNDO, Command.UNDO_PLAN):
            done = "would take back" if self.command is Command.UNDO_PLAN else "took back"
            yield (f"{self.command}: {done} {counts.get('undone', 0) or counts.get('planned', 0)} moves; "
                   + self._tally(counts, Kind.HELD, Kind.SKIPPED, Kind.FAILED))
            for o in self.outcomes:
                if o.kind in (Kind.PLANNED, Kind.UNDONE):
                    yield f"  {o.path}: {o.plan or o.reason}"
                    yield from (f"      {d}" for d in o.differences)
        else:
            yield (f"{self.command}: {self.moved_assets} assets moved ({self._tally(counts, Kind.UPLOADED, Kind.MERGED)}), "
                   f"{self._tally(counts, Kind.HELD, Kind.WAITING, Kind.SKIPPED, Kind.FAILED)}; "
                   f"{human_bytes(self.moved_bytes)} in {self.duration:.1f}s"
                   + (f" (throttled {self.throttled_seconds:.0f}s)" if self.throttled_seconds >= 1 else ""))
        if self.at_limit:
            yield f"this run's share is done ({self.stopped_because}); the next run goes on"
        elif self.stopped_because:
            yield f"stopped early: {self.stopped_because}"
        if self.remaining:
            yield "remaining: " + ", ".join(f"{self.library_label(lib)}: {n}" for lib, n in sorted(self.remaining.items()))
        for o in self.outcomes:
            # a plan lists every unit above, held and skipped ones with their reason already
            if not o.info.listed or self.command is Command.PLAN and o.kind is not Kind.FAILED:
                continue
            yield o.line(loud=True)
            if self.command is not Command.PLAN:
                yield from (f"    {d}" for d in o.differences)
        yield from self.notes


_OUTCOME_FIELDS = tuple(f.name for f in fields(Outcome) if f.name != "ended")


def _outcome_dict(o: Outcome) -> dict[str, Any]:
    # not dataclasses.asdict: its deep copies were a third of a 100k-asset plan's time
    data = {name: getattr(o, name) for name in _OUTCOME_FIELDS}
    data["kind"] = o.kind.value
    data["steps"] = {k: round(v, 4) for k, v in o.steps.items()}
    if o.kind in (Kind.SKIPPED, Kind.HELD):
        data["reasonText"] = o.reason_text
    return data


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"

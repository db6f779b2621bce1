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
from typing import Any, Iterator, Literal

Kind = Literal["uploaded", "merged", "skipped", "failed", "waiting", "planned"]
FINAL = ("uploaded", "merged")

# Skip reasons, as they appear in the report and the metrics' `reason` label.
SKIP_REASONS = {
    "offline": "Immich marks the file offline (missing on disk): it cannot be downloaded",
    "trashed": "the external asset is in the trash: deleting it was your choice",
    "locked": "the asset is in the locked folder, which an API key cannot read",
    "other_owner": "the asset belongs to another user: run ext2int with that user's API key",
    "live_video_unavailable": "the video half of this live photo is offline, trashed or missing",
    "kept": "already copied with EXT2INT_DELETE=keep",
    "reimport_loop": ("a re-import of a file already moved: Immich could not delete the original (read-only mount?), "
                      "so its library scan imported it again. Give Immich write access to the folder, or add an "
                      "exclusion pattern for the file in the library's settings, then delete this external asset"),
    "not_external": "the asset is not in an external library",
}
STAGES = ("read", "download", "upload", "prove", "carry", "verify", "delete", "incomplete")


@dataclass(slots=True)  # a 100k-asset plan holds 100k of these
class Outcome:
    asset_id: str
    path: str
    library_id: str
    kind: Kind
    reason: str = ""  # skip reason key, waiting reason, or the failure's one-line message
    stage: str = ""  # failures: where it happened
    bytes: int = 0
    assets: int = 1  # a live pair is one outcome for two assets
    target_id: str | None = None
    deleted: bool = False
    differences: list[str] = field(default_factory=list)
    cannot_move: list[str] = field(default_factory=list)
    plan: str = ""  # `plan` only: what would happen
    steps: dict[str, float] = field(default_factory=dict)
    stops_run: str = ""  # a failure no other asset can avoid (a missing permission): the run stops
    pending_delete: list[str] = field(default_factory=list)  # verified sources the runner still has to delete


@dataclass
class Report:
    command: str
    started: float = field(default_factory=time.time)
    finished: float | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    listed: int = 0
    remaining: dict[str, int] = field(default_factory=dict)  # per library, after the run
    throttled_seconds: float = 0.0
    stopped_because: str = ""  # limit reached, signal, back-pressure...
    server_failed: bool = False  # stopped because Immich failed a listing: the run's exit code is 3
    server_version: str = ""
    delete_mode: str = ""
    libraries: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)  # sent to Immich: total, mutating

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def finish(self) -> None:
        self.finished = time.time()

    @property
    def duration(self) -> float:
        return (self.finished or time.time()) - self.started

    def counts(self) -> Counter[str]:
        return Counter(o.kind for o in self.outcomes)

    @property
    def moved_bytes(self) -> int:
        return sum(o.bytes for o in self.outcomes if o.kind in FINAL)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind == "failed"]

    def exit_code(self) -> int:
        """0 all done, 1 some assets failed, 3 Immich failed a call the whole run depends on (see cli)."""
        return 3 if self.server_failed else 1 if self.failed else 0

    # --- rendering ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {**self._summary_dict(), "outcomes": [_outcome_dict(o) for o in self.outcomes]}

    def _summary_dict(self) -> dict[str, Any]:
        counts = self.counts()
        return {
            "command": self.command,
            "started": _iso(self.started),
            "finished": _iso(self.finished) if self.finished else None,
            "durationSeconds": round(self.duration, 3),
            "serverVersion": self.server_version,
            "deleteMode": self.delete_mode,
            "libraries": self.libraries,
            "listed": self.listed,
            "counts": {k: counts.get(k, 0) for k in ("uploaded", "merged", "waiting", "skipped", "failed", "planned")},
            "assetsMoved": sum(o.assets for o in self.outcomes if o.kind in FINAL),
            "bytesMoved": self.moved_bytes,
            "remaining": self.remaining,
            "throttledSeconds": round(self.throttled_seconds, 3),
            "stoppedBecause": self.stopped_because,
            "notes": self.notes,
            "requests": self.requests,
        }

    def write_json(self, path: Path) -> None:
        """Atomically (a reader never sees half a report), and one outcome at a time: the report of a
        100k-asset plan is never held in memory as a whole. The file is the same as `to_dict()`'s."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".report-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
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

    def render_text(self) -> str:
        return "\n".join(self.text_lines())

    def text_lines(self) -> Iterator[str]:
        """The terminal summary, line by line (a plan prints one line per asset)."""
        counts = self.counts()
        if self.command == "plan":
            yield f"Plan ({len(self.outcomes)} items, {self.listed} assets listed; nothing was changed):"
            for o in self.outcomes:
                yield f"  {o.plan or o.kind:<44} {o.path}"
                for note in o.cannot_move:
                    yield f"      cannot move: {note}"
        lines: list[str] = []
        moved = sum(o.assets for o in self.outcomes if o.kind in FINAL)
        lines.append(
            f"{self.command}: {moved} assets moved ({counts.get('uploaded', 0)} uploaded, {counts.get('merged', 0)} merged "
            f"into existing internal assets), {counts.get('waiting', 0)} waiting, {counts.get('skipped', 0)} skipped, "
            f"{counts.get('failed', 0)} failed; {_human_bytes(self.moved_bytes)} in {self.duration:.1f}s"
            + (f" (throttled {self.throttled_seconds:.0f}s)" if self.throttled_seconds >= 1 else "")
        )
        if self.stopped_because:
            lines.append(f"stopped early: {self.stopped_because}")
        if self.remaining:
            lines.append("remaining: " + ", ".join(f"{lib}: {n}" for lib, n in sorted(self.remaining.items())))
        for o in self.outcomes:
            if o.kind == "failed":
                lines.append(f"FAILED [{o.stage}] {o.path}: {o.reason}")
                for diff in o.differences:
                    lines.append(f"    {diff}")
            elif o.kind == "waiting":
                lines.append(f"waiting {o.path}: {o.reason}")
            elif o.kind == "skipped" and self.command != "plan":
                lines.append(f"skipped {o.path}: {SKIP_REASONS.get(o.reason, o.reason)}")
        lines.extend(self.notes)
        yield from lines


_OUTCOME_FIELDS = tuple(f.name for f in fields(Outcome) if f.name != "pending_delete")


def _outcome_dict(o: Outcome) -> dict[str, Any]:
    # not dataclasses.asdict: its deep copies were a third of a 100k-asset plan's time
    data = {name: getattr(o, name) for name in _OUTCOME_FIELDS}
    data["steps"] = {k: round(v, 4) for k, v in o.steps.items()}
    if o.kind == "skipped":
        data["reasonText"] = SKIP_REASONS.get(o.reason, o.reason)
    return data


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"

"""What the job writes into Immich's asset metadata (key/values), and how it reads it back. Pure.

- The journal, on an external source (key `immich-ext2int`): which internal asset holds its bytes, the
  bytes' SHA-1 and size, the file's state when they were hashed, and how far the move got. A later run
  finishes the move from it without a second transfer (after proving the bytes again).
- The provenance, on an internal target (same key): every source it replaced, with path, library,
  SHA-1 and size, and the run that moved it.
- The claim, on a source (key `immich-ext2int-claim`): which run (and which unit of it) is working on
  the asset, until when. Two processes never act on one asset at once (see `job/move/claim.py`).
Every key that starts with `immich-ext2int` is the job's own: never carried, never compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from job.clock import seconds
from job.immich.models import Asset, MetadataItem

KEY = "immich-ext2int"
CLAIM_KEY = "immich-ext2int-claim"
VERSION = 1
MAX_PROVENANCE_SOURCES = 20


class State(str, Enum):
    """How far the move of a source got, as its journal says."""

    UPLOADING = "uploading"  # a run began bringing the bytes to a new internal asset (see `intent`)
    COPIED = "copied"  # the target holds the bytes; curation carried or waiting
    KEPT = "kept"  # done with EXT2INT_DELETE=keep
    LOOP = "loop"  # a re-import of a file already moved (Immich could not delete it)
    HELD = "held"  # a relation or a conflict holds it; the target holds the bytes
    TRASHED = "trashed"  # the gate trashed it: the move is done; the trash watch proves it again (job/run/watch.py)
    UNDOING = "undoing"  # `ext2int undo` is taking the move back (a killed undo finishes it next time)
    UNDONE = "undone"  # `ext2int undo` took the move back: runs leave it (unless EXT2INT_MOVE_UNDONE)


def ours(key: str) -> bool:
    return key == KEY or key.startswith(KEY + "-")


def value_of(items: tuple[MetadataItem, ...] | list[MetadataItem] | None, key: str = KEY) -> dict[str, Any] | None:
    for item in items or ():
        if item.key == key:
            return dict(item.value)
    return None


def stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


# --- the journal (on a source) --------------------------------------------------------------------


def journal(state: State, *, target: str, sha1: str, size: int, created: bool, source: Asset, at: float,
            etag: str | None, run: str) -> dict[str, Any]:
    return {"v": VERSION, "state": state.value, "target": target, "sha1": sha1, "size": size, "created": created,
            "sourceModifiedAt": source.fileModifiedAt, "sourceSize": source.size, "etag": etag, "at": stamp(at),
            "run": run}


def journal_matches(entry: dict[str, Any] | None, source: Asset) -> bool:
    """A journal entry is trusted only while Immich still knows the file as it was when its bytes were
    hashed (same modification time and size). Immich learns of a rewritten file only at its next library
    scan, so the delete gate hashes the bytes again before a move finished from a journal deletes."""
    if not entry or entry.get("v") != VERSION or not entry.get("target") or not entry.get("sha1"):
        return False
    return entry.get("sourceModifiedAt") == source.fileModifiedAt and entry.get("sourceSize") == source.size


def state_of(entry: dict[str, Any] | None) -> State | None:
    try:
        return State((entry or {}).get("state"))
    except ValueError:
        return None


def intent(entry: dict[str, Any] | None, source: Asset, at: float, run: str) -> dict[str, Any] | None:
    """The journal that says, before an upload starts, that the job is about to make a new internal asset
    of this file (written with the claim, in the same request): an upload cut short by Immich restarting
    can leave an asset row without the provenance sent with it, and this is how a later run still knows
    it for the job's own half-made copy. None when nothing needs writing: a journal names a target already
    (its move finishes from there), an undo's mark stands, or an intent for this very file is there
    (its first time stays: the half-made copy was made after it)."""
    state = state_of(entry)
    if state in (State.UNDOING, State.UNDONE) or journal_matches(entry, source) or upload_since(entry, source) is not None:
        return None
    return {"v": VERSION, "state": State.UPLOADING.value, "since": stamp(at), "sourceModifiedAt": source.fileModifiedAt,
            "sourceSize": source.size, "run": run}


def upload_since(entry: dict[str, Any] | None, source: Asset) -> float | None:
    """When the job began bringing this file's bytes, as its upload intent says (None: no such intent, or
    one for another version of the file)."""
    if not entry or entry.get("v") != VERSION or state_of(entry) is not State.UPLOADING:
        return None
    if entry.get("sourceModifiedAt") != source.fileModifiedAt or entry.get("sourceSize") != source.size:
        return None
    return seconds(entry.get("since"))


def half_made(marker: dict[str, Any] | None, since: float | None, created_at: str | None, read: bool,
              margin: float) -> bool:
    """Is an internal asset that an upload answered 'duplicate' for the job's own half-made copy? It has no
    provenance at all (Immich lost it with the upload), Immich has never read it (its metadata job was
    lost too: a phone's backup of the same photo is read within seconds, so it never counts), and it was
    made after the job said it was about to upload (`since`, less `margin` for the clocks of two machines)."""
    made = seconds(created_at) if created_at else None
    return marker is None and since is not None and not read and made is not None and made >= since - margin


# --- the provenance (on a target) -----------------------------------------------------------------


def upload_provenance(source: Asset, at: float, run: str) -> dict[str, Any]:
    """The entry sent with the upload itself (the transfer adds the bytes' SHA-1 and size)."""
    return {"source": source.id, "library": source.libraryId, "path": source.originalPath, "at": stamp(at), "run": run}


def created_marker(entry: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The marker a target gets with its upload: its one source, and `extra` (what it must hold)."""
    return {"v": VERSION, "sources": [entry], **(extra or {}), "created": True}


def provenance(marker: dict[str, Any] | None, source: Asset, *, sha1: str, size: int, at: float, run: str,
               expected: dict[str, Any] | None = None, created: bool | None = None,
               before: dict[str, Any] | None = None, restored: bool = False) -> dict[str, Any]:
    """The target's marker with `source` added (replacing an older entry of the same source), and what
    undo and verify need: the record the target was verified to hold (`expected`), whether the job made
    the target (`created`: once true it stays, as a later move of the same bytes from another path merges
    into the copy the first one made), and for an internal asset that existed before, its record before
    the job's first write (`before`: the first one written stays). Markers without them (older versions) still
    read: verify then proves the bytes alone, undo says what it cannot take back."""
    entries = [e for e in (marker or {}).get("sources", []) if e.get("source") != source.id]
    entries.append({**upload_provenance(source, at, run), "sha1": sha1, "size": size})
    out = {"v": VERSION, "sources": entries[-MAX_PROVENANCE_SOURCES:]}
    for key, value in (("expected", expected), ("created", created), ("before", before), ("restored", restored or None)):
        kept = (marker or {}).get(key)
        if key in ("before", "restored") and kept is not None or key == "created" and kept is True:
            value = kept
        if value is not None or kept is not None:
            out[key] = value if value is not None else kept
    return out


def made_for(marker: dict[str, Any] | None, source_ids: list[str]) -> bool:
    """Was this internal asset uploaded for one of these sources (the same file: a source and its path
    twins), by an earlier, interrupted run or another unit of this one?"""
    sources = (marker or {}).get("sources", [])
    return len(sources) == 1 and sources[0].get("source") in source_ids


# --- claims (on sources) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    run: str
    unit: str  # the id of the asset the unit is named after
    until: float  # wall-clock seconds

    def value(self) -> dict[str, Any]:
        return {"v": VERSION, "run": self.run, "unit": self.unit, "until": stamp(self.until)}

    @classmethod
    def of(cls, value: dict[str, Any] | None) -> Claim | None:
        if not value or value.get("v") != VERSION:
            return None
        until = seconds(value.get("until"))
        if until is None:
            return None
        return cls(str(value.get("run", "")), str(value.get("unit", "")), until)

    def same_holder(self, other: Claim | None) -> bool:
        return other is not None and (other.run, other.unit) == (self.run, self.unit)


def claim_blocks(current: Claim | None, mine: Claim, now: float) -> bool:
    """Does `current` (read from the asset) keep `mine` from taking it? A claim of another holder blocks
    until it expires."""
    return current is not None and not mine.same_holder(current) and now < current.until


def claim_holds(current: Claim | None, mine: Claim, now: float, margin: float) -> bool:
    """Is `mine` still the claim on the asset, with at least `margin` seconds left? The holder stops
    acting that long before the expiry, so that another process whose clock runs ahead by less than
    `margin` never sees the claim expired while the holder still acts on it. The end is the earlier of
    the asset's and `mine`'s: a renewal the holder did not see Immich take in time does not count
    (job/move/held.py)."""
    return mine.same_holder(current) and current is not None and now + margin < min(current.until, mine.until)

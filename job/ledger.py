"""What a target's provenance says the job did, and what undoing it takes. Pure.

The provenance (job/journal.py) records, besides every source a target replaced, the record the target
was verified to hold (`expected`, for `verify`), whether the job made the target (`created`), and for an
internal asset that existed before (a merged twin) its record before the job's first write (`before`,
for `undo`). Records are stored as plain JSON (`to_json`, `from_json`).

Undoing a merge removes only what the job added and puts back only the values it changed, and only
where they still are as the job left them: what a user changed since stays, and is said.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

from job.facts import FaceBox
from job.record import Record, StackRole

# Values the job writes with PUT /assets, with the API's names (undo writes the old ones back).
SCALARS = {"favorite": "isFavorite", "visibility": "visibility", "description": "description", "rating": "rating",
           "taken_at": "dateTimeOriginal", "time_zone": "timeZone"}
# What undo does not take back (the job reports them): moving them back could break what the user did since.
KEPT = ("shared_links", "live_video")  # (covers and a stack the undo hands back itself: job/run/undoer.py)


def to_json(record: Record) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(Record):
        value = getattr(record, f.name)
        if isinstance(value, frozenset):
            value = sorted([list(v) if isinstance(v, tuple) else _box(v) if isinstance(v, FaceBox) else v for v in value],
                           key=repr)
        elif isinstance(value, StackRole):
            value = {"others": sorted(value.others), "primary": value.primary_is_self}
        elif isinstance(value, tuple):
            value = [list(v) if isinstance(v, tuple) else v for v in value]
        out[f.name] = value
    return out


def from_json(data: dict[str, Any] | None) -> Record | None:
    if not isinstance(data, dict):
        return None
    try:
        stack = data.get("stack")
        return Record(
            favorite=bool(data.get("favorite", False)), visibility=str(data.get("visibility", "timeline")),
            description=str(data.get("description", "")), rating=data.get("rating"), taken_at=data.get("taken_at"),
            time_zone=data.get("time_zone"), gps=tuple(data["gps"]) if data.get("gps") else None,
            tags=frozenset(data.get("tags") or ()),
            albums=_set(data.get("albums")), covers=_set(data.get("covers")), shared_links=_set(data.get("shared_links")),
            stack=StackRole(frozenset(stack["others"]), bool(stack["primary"])) if stack else None,
            live_video=data.get("live_video"),
            edits=tuple(tuple(e) for e in data["edits"]) if data.get("edits") is not None else None,
            metadata=frozenset(tuple(m) for m in data["metadata"]) if data.get("metadata") is not None else None,
            faces=frozenset(FaceBox(**b) for b in data["faces"]) if data.get("faces") is not None else None,
        )
    except (KeyError, TypeError, ValueError):
        return None


def _box(box: FaceBox) -> dict[str, Any]:
    return {"person_id": box.person_id, "x1": box.x1, "y1": box.y1, "x2": box.x2, "y2": box.y2}


def _set(value: Any) -> frozenset | None:
    return None if value is None else frozenset(value)


# --- undoing a merge ---------------------------------------------------------------------------------


@dataclass
class Takeback:
    """What undoing the job's writes on a merged twin takes: each a removal of what the job added, or a
    value put back; and what stays (changed since the move, or not taken back), in words."""

    albums: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)  # tag values
    metadata: list[str] = field(default_factory=list)  # keys
    faces: list[FaceBox] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)  # PUT /assets fields, their values before the job
    edits: list[dict[str, Any]] | None = None  # the edits before the job ([]: none) when the job set them
    stays: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.albums or self.tags or self.metadata or self.faces or self.values or self.edits is not None)

    def summary(self) -> list[str]:
        parts = [f"{len(v)} {name}" for name, v in (("albums", self.albums), ("tags", self.tags),
                                                     ("key/values", self.metadata), ("faces", self.faces)) if v]
        if self.values:
            parts.append("the values " + ", ".join(sorted(self.values)) + " as they were")
        if self.edits is not None:
            parts.append("the edits as they were")
        return parts


def takeback(before: Record, expected: Record, now: Record) -> Takeback:
    """What the job added to a twin (`expected` beyond `before`) that is still there `now`."""
    out = Takeback()
    out.albums = sorted(((expected.albums or frozenset()) - (before.albums or frozenset())) & (now.albums or frozenset()))
    out.tags = sorted((expected.tags - before.tags) & now.tags)
    added_kv = (expected.metadata or frozenset()) - (before.metadata or frozenset())
    out.metadata = sorted({k for k, v in added_kv & (now.metadata or frozenset())}
                          - {k for k, _ in before.metadata or frozenset()})
    out.faces = sorted((b for b in (expected.faces or frozenset()) - (before.faces or frozenset())
                        if any(n.person_id == b.person_id and n.iou(b) >= 0.5 for n in now.faces or ())), key=repr)
    for name, api in SCALARS.items():
        old, written, current = getattr(before, name), getattr(expected, name), getattr(now, name)
        if old == written:
            continue
        if current == written:
            out.values[api] = old if old is not None else ("" if name == "description" else None)
        else:
            out.stays.append(f"{name}: changed since the move ({current!r}), left as it is")
    if before.gps != expected.gps:
        if now.gps == expected.gps and before.gps is not None:
            out.values["latitude"], out.values["longitude"] = before.gps
        else:
            out.stays.append("gps: " + ("changed since the move, left as it is" if now.gps != expected.gps
                                        else "Immich cannot clear a place once set: left as it is"))
    if (before.edits or ()) != (expected.edits or ()):
        if (now.edits or ()) == (expected.edits or ()):
            out.edits = [{"action": a, "parameters": json.loads(p)} for a, p in before.edits or ()]
        else:
            out.stays.append("edits: changed since the move, left as they are")
    for name in KEPT:
        if getattr(before, name) != getattr(expected, name):
            out.stays.append(f"{name}: not taken back (set by the move; change it in Immich if it should be)")
    return out


def later_curation(expected: Record, now: Record) -> list[str]:
    """What a target the job made holds beyond what the move gave it: curation a user added since, which
    deleting the target would lose."""
    found = []
    for name in ("albums", "tags", "metadata", "shared_links"):
        extra = (getattr(now, name) or frozenset()) - (getattr(expected, name) or frozenset())
        if extra:
            found.append(f"{name}: {', '.join(sorted(map(str, extra)))} added since the move")
    # a person named on the copy since the move (Immich finds faces of the people it knows by itself, and
    # in the external asset alike: those are not the user's)
    people = {b.person_id for b in now.faces or ()} - {b.person_id for b in expected.faces or ()}
    if people:
        found.append(f"faces: {len(people)} person(s) named on it since the move")
    for name in ("favorite", "visibility", "description", "rating", "taken_at", "time_zone", "gps", "edits"):
        if getattr(now, name) != getattr(expected, name):
            found.append(f"{name}: {getattr(now, name)!r} since the move (was {getattr(expected, name)!r})")
    return found


def changes(expected: Record, now: Record) -> list[str]:
    """Every field where `now` is not what the move verified: what was removed, added, or set since."""
    found = []
    for f in fields(Record):
        was, is_ = getattr(expected, f.name), getattr(now, f.name)
        if was is None or was == is_:
            continue  # a kind the move did not read is not compared
        if isinstance(was, frozenset):
            gone, added = sorted(map(str, was - (is_ or frozenset()))), sorted(map(str, (is_ or frozenset()) - was))
            if f.name == "faces":  # only losses: Immich keeps finding faces (and people) in an asset by itself
                gone = [str(b) for b in was if not any(n.person_id == b.person_id and n.iou(b) >= 0.5 for n in is_ or ())]
                added = []
            if gone or added:
                found.append(f"{f.name}:" + (f" removed {', '.join(gone)}" if gone else "") + (f" added {', '.join(added)}" if added else ""))
        else:
            found.append(f"{f.name}: was {was!r} after the move, now {is_!r}")
    return found

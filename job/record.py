"""The curated record of an asset: everything a user curated in Immich, in one canonical shape.

One function builds it (`record_of`), one compares two (`differences`), and one merges a source into an
existing target (`merge`), naming every conflict instead of overwriting; `writes.py` lists the writes
that make a target cover a record. The same `RULES` table drives the three: how a kind compares and
merges is one entry there (reading it is in `facts.py`, writing it in `writes.py` and `move/carry.py`).

Identity: a record speaks of other assets through tokens, so source and target records compare
equal. The pair being moved is '@self' (source and target alike), its live-photo video is '@live';
other assets keep their ids. "Covers" is the relation checked before deleting a source: the target
holds everything the source held (sets may hold more; scalars the source left empty may keep the
target's own value).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from enum import Enum
from typing import Any

from job import journal
from job.facts import (
    FaceBox, Facts, canonical_edit, canonical_json, face_box, normalize_instant, round6, unmatched_faces,
)

SELF = "@self"
LIVE = "@live"


# --- the record --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StackRole:
    others: frozenset[str]  # members other than this asset (source and target are both '@self')
    primary_is_self: bool


@dataclass(frozen=True)
class Record:
    favorite: bool = False
    visibility: str = "timeline"
    description: str = ""
    rating: int | None = None
    taken_at: str | None = None
    time_zone: str | None = None
    gps: tuple[float, float] | None = None
    tags: frozenset[str] = frozenset()
    albums: frozenset[str] | None = None
    covers: frozenset[str] | None = None
    shared_links: frozenset[str] | None = None
    stack: StackRole | None = None
    live_video: str | None = None
    edits: tuple[tuple[str, str], ...] | None = None
    metadata: frozenset[tuple[str, str]] | None = None
    faces: frozenset[FaceBox] | None = None


@dataclass(frozen=True)
class Values:
    """One field's two values, as a person reads them: a Difference (what the target must hold, what it
    holds) or a Conflict (the external asset's value, the internal one's)."""

    field: str
    first: Any
    second: Any
    names = ("", "")

    def __str__(self) -> str:
        return f"{self.field}: {self.names[0]} {show_value(self.first)}, {self.names[1]} {show_value(self.second)}"


class Difference(Values):
    names = ("expected", "found")


def show_value(value: Any) -> str:
    """A value as a person reads it: a set as {a, b}, anything else as its repr."""
    if isinstance(value, frozenset):
        return "{" + ", ".join(sorted(str(v) for v in value)) + "}"
    return repr(value)


def record_of(facts: Facts, identity: Mapping[str, str] | None = None) -> Record:
    """The curated record of `facts.asset`; `identity` maps asset ids to tokens (see module doc)."""
    identity = identity or {}
    token = lambda asset_id: identity.get(asset_id, asset_id)  # noqa: E731
    asset = facts.asset
    exif = asset.exifInfo
    gps = None
    if exif and exif.latitude is not None and exif.longitude is not None:
        gps = (round6(exif.latitude), round6(exif.longitude))
    rating = exif.rating if exif else None
    record = Record(
        favorite=asset.isFavorite,
        visibility=asset.visibility,
        description=(exif.description or "") if exif else "",
        rating=None if rating in (None, 0) else rating,
        taken_at=normalize_instant(exif.dateTimeOriginal) if exif else None,
        time_zone=exif.timeZone if exif else None,
        gps=gps,
        tags=frozenset(t.value for t in asset.tags or ()),
        live_video=token(asset.livePhotoVideoId) if asset.livePhotoVideoId else None,
    )
    if facts.albums is not None:
        own = token(asset.id)
        record = replace(
            record,
            albums=frozenset(a.id for a in facts.albums),
            # only albums the asset's owner owns: nobody else may set their cover (Immich re-picks it)
            covers=frozenset(a.id for a in facts.albums if a.albumThumbnailAssetId and token(a.albumThumbnailAssetId) == own
                             and a.ownerId == asset.ownerId),
        )
    if facts.shared_links is not None:
        record = replace(record, shared_links=facts.shared_links)
    if asset.stack is not None:
        members = facts.stack.member_ids if facts.stack is not None else frozenset()
        own = token(asset.id)
        record = replace(
            record,
            stack=StackRole(
                others=frozenset(token(m) for m in members) - {own},
                primary_is_self=token(asset.stack.primaryAssetId) == own,
            ),
        )
    if facts.edits is not None:
        record = replace(record, edits=tuple(canonical_edit(e) for e in facts.edits))
    if facts.metadata is not None:
        record = replace(
            record,
            metadata=frozenset((m.key, canonical_json(m.value)) for m in facts.metadata if not journal.ours(m.key)),
        )
    if facts.faces is not None:
        record = replace(record, faces=frozenset(b for b in map(face_box, facts.faces) if b is not None))
    return record


# --- field semantics ---------------------------------------------------------------------------

def _empty(value: Any) -> bool:
    return value in (None, "", False) or (isinstance(value, (frozenset, tuple)) and not value)


def _covers_scalar(actual: Any, expected: Any) -> bool:
    return _empty(expected) or actual == expected


def _covers_set(actual: frozenset | None, expected: frozenset | None) -> bool:
    return not expected or (actual is not None and expected <= actual)


def _covers_stack(actual: StackRole | None, expected: StackRole | None) -> bool:
    if expected is None:
        return True
    if actual is None:
        return False
    return expected.others <= actual.others and (actual.primary_is_self or not expected.primary_is_self)


def _covers_faces(actual: frozenset[FaceBox] | None, expected: frozenset[FaceBox] | None) -> bool:
    return not unmatched_faces(expected or frozenset(), actual or frozenset())


def _covers_visibility(actual: str, expected: str) -> bool:
    return expected == "timeline" and actual in ("timeline", "archive") or actual == expected


class Policy(str, Enum):
    """EXT2INT_ON_CONFLICT: what happens when two assets hold different values of a single-valued field."""

    HOLD = "hold"  # hold the external asset and report the conflict, field by field (the default)
    INTERNAL = "internal"  # keep the internal asset's value (for two external assets of one file: the first's)
    EXTERNAL = "external"  # take the external asset's value


@dataclass(frozen=True)
class FieldRule:
    covers: Callable[[Any, Any], bool]
    merge: Callable[[Any, Any], Any]
    single: bool = False  # one value: two different non-empty values conflict


def _single(source: Any, target: Any) -> Any:
    return target if _empty(source) else source


def _union(source: frozenset | None, target: frozenset | None) -> frozenset | None:
    if source is None and target is None:
        return None
    return (source or frozenset()) | (target or frozenset())


def _merge_stack(source: StackRole | None, target: StackRole | None) -> StackRole | None:
    if source is None:
        return target
    if target is None:
        return source
    return StackRole(source.others | target.others, source.primary_is_self or target.primary_is_self)


# Semantics per field: how "target covers source" is decided and how a source merges into a target.
# Favourite and archive are flags: set on either side, set on the result (Immich has no "unset" mark,
# so they never conflict). Sets are united. Single values conflict when both sides have one.
RULES: dict[str, FieldRule] = {
    "favorite": FieldRule(lambda a, e: a or not e, lambda s, t: s or t),
    "visibility": FieldRule(_covers_visibility, lambda s, t: t if s == "timeline" else s),
    "description": FieldRule(_covers_scalar, _single, single=True),
    "rating": FieldRule(_covers_scalar, _single, single=True),
    "taken_at": FieldRule(_covers_scalar, _single, single=True),
    "time_zone": FieldRule(_covers_scalar, _single, single=True),
    "gps": FieldRule(_covers_scalar, _single, single=True),
    "tags": FieldRule(_covers_set, _union),
    "albums": FieldRule(_covers_set, _union),
    "covers": FieldRule(_covers_set, _union),
    "shared_links": FieldRule(_covers_set, _union),
    "stack": FieldRule(_covers_stack, _merge_stack),
    "live_video": FieldRule(_covers_scalar, _single, single=True),
    "edits": FieldRule(_covers_scalar, _single, single=True),
    "metadata": FieldRule(_covers_set, _union),
    "faces": FieldRule(_covers_faces, _union),
}
assert set(RULES) == {f.name for f in fields(Record)}, "every record field needs a rule"
# A live-photo link or an edit list taken from one side would leave the other side's video or edits
# without their photo: those conflicts are held whatever EXT2INT_ON_CONFLICT says.
ALWAYS_HOLD = frozenset({"live_video"})


class Conflict(Values):
    names = ("external", "internal")


def differences(expected: Record, actual: Record) -> list[Difference]:
    """Where `actual` (the target) does not cover `expected`; empty when deletion is safe."""
    found = []
    for name, rule in RULES.items():
        want, have = getattr(expected, name), getattr(actual, name)
        if not rule.covers(have, want):
            found.append(Difference(name, want, have))
    return found


def merge(source: Record, target: Record, policy: Policy = Policy.HOLD,
          join_descriptions: bool = False) -> tuple[Record, list[Conflict]]:
    """What the target must hold once the source is merged into it, and where the two disagree. Sets are
    united; a single value only one side has is taken; two different single values are a Conflict,
    resolved by `policy` (with HOLD the target's value stands and the caller holds the source)."""
    merged: dict[str, Any] = {}
    conflicts: list[Conflict] = []
    for name, rule in RULES.items():
        mine, theirs = getattr(source, name), getattr(target, name)
        value = rule.merge(mine, theirs)
        if rule.single and not _empty(mine) and not _empty(theirs) and mine != theirs:
            if name == "description" and join_descriptions:
                value = _joined(theirs, mine)
            else:
                conflicts.append(Conflict(name, mine, theirs))
                value = mine if policy is Policy.EXTERNAL and name not in ALWAYS_HOLD else theirs
        merged[name] = value
    return Record(**merged), conflicts


def blocking(conflicts: list[Conflict], policy: Policy) -> list[Conflict]:
    """The conflicts that hold the source under `policy`."""
    return [c for c in conflicts if policy is Policy.HOLD or c.field in ALWAYS_HOLD]


def _joined(first: str, second: str) -> str:
    if second in first:
        return first
    if first in second:
        return second
    return f"{first}\n\n{second}"

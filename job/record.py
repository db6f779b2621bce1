"""The curated record of an asset: everything a user curated in Immich, in one canonical shape.

One function builds it (`record_of`), one compares two (`differences`), one merges a source into an
existing target (`merge`), and one lists the writes that make a target cover a source
(`writes_for`). The same `FIELDS` table drives all four, so adding a kind of metadata is one entry.

Identity: a record speaks of other assets through tokens, so source and target records compare
equal. The pair being moved is '@self' (source and target alike), its live-photo video is '@live';
other assets keep their ids. "Covers" is the relation checked before deleting a source: the target
holds everything the source held (sets may hold more; scalars the source left empty may keep the
target's own value).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from typing import Any

from job.immich.models import Album, Asset, Edit, Face, MetadataItem, Stack

MARKER = "immich-ext2int"  # our asset-metadata key: provenance on targets, journal on sources
SELF = "@self"
LIVE = "@live"


# --- facts: what was read ----------------------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """What was read about one asset. None means 'not read' (not needed, or not offered by the server)."""

    asset: Asset
    albums: tuple[Album, ...] | None = None
    metadata: tuple[MetadataItem, ...] | None = None
    faces: tuple[Face, ...] | None = None
    edits: tuple[Edit, ...] | None = None
    stack: Stack | None = None
    shared_links: frozenset[str] | None = None

    def marker(self) -> dict[str, Any] | None:
        for item in self.metadata or ():
            if item.key == MARKER:
                return dict(item.value)
        return None


# --- the record --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceBox:
    person_id: str
    x1: float
    y1: float
    x2: float
    y2: float

    def iou(self, other: FaceBox) -> float:
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        union = (self.x2 - self.x1) * (self.y2 - self.y1) + (other.x2 - other.x1) * (other.y2 - other.y1) - inter
        return inter / union if union > 0 else 0.0


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
class Difference:
    field: str
    expected: Any
    actual: Any

    def __str__(self) -> str:
        return f"{self.field}: expected {_show(self.expected)}, found {_show(self.actual)}"


def _show(value: Any) -> str:
    if isinstance(value, frozenset):
        return "{" + ", ".join(sorted(str(v) for v in value)) + "}"
    return repr(value)


# --- normalisation -----------------------------------------------------------------------------


def normalize_instant(value: str | None) -> str | None:
    """Any ISO timestamp -> UTC 'YYYY-MM-DDTHH:MM:SS.mmmZ' (Immich answers with several spellings)."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _round(value: float) -> float:
    return round(value, 6)


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _canonical_edit(edit: Edit) -> tuple[str, str]:
    params = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in edit.parameters.items()}
    return (edit.action, _canonical_json(params))


def face_box(face: Face, *, any_person: bool = False) -> FaceBox | None:
    """The face's box as fractions of the image (so sizes compare across renditions); faces without
    a person are left out unless `any_person`."""
    if (face.person is None and not any_person) or face.imageWidth <= 0 or face.imageHeight <= 0:
        return None
    w, h = float(face.imageWidth), float(face.imageHeight)
    return FaceBox(
        face.person.id if face.person else "",
        round(face.boundingBoxX1 / w, 4),
        round(face.boundingBoxY1 / h, 4),
        round(face.boundingBoxX2 / w, 4),
        round(face.boundingBoxY2 / h, 4),
    )


def record_of(facts: Facts, identity: Mapping[str, str] | None = None) -> Record:
    """The curated record of `facts.asset`; `identity` maps asset ids to tokens (see module doc)."""
    identity = identity or {}
    token = lambda asset_id: identity.get(asset_id, asset_id)  # noqa: E731
    asset = facts.asset
    exif = asset.exifInfo
    gps = None
    if exif and exif.latitude is not None and exif.longitude is not None:
        gps = (_round(exif.latitude), _round(exif.longitude))
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
        record = replace(record, edits=tuple(_canonical_edit(e) for e in facts.edits))
    if facts.metadata is not None:
        record = replace(
            record,
            metadata=frozenset((m.key, _canonical_json(m.value)) for m in facts.metadata if m.key != MARKER),
        )
    if facts.faces is not None:
        record = replace(record, faces=frozenset(b for b in map(face_box, facts.faces) if b is not None))
    return record


# --- field semantics ---------------------------------------------------------------------------

FACE_IOU = 0.5


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


def unmatched_faces(expected: frozenset[FaceBox], actual: frozenset[FaceBox]) -> list[FaceBox]:
    """Expected faces with no actual face of the same person overlapping it (IoU >= FACE_IOU)."""
    return [
        e for e in sorted(expected, key=lambda b: (b.person_id, b.x1, b.y1))
        if not any(a.person_id == e.person_id and a.iou(e) >= FACE_IOU for a in actual)
    ]


@dataclass(frozen=True)
class FieldRule:
    covers: Callable[[Any, Any], bool]
    merge: Callable[[Any, Any], Any]


def _source_unless_empty(source: Any, target: Any) -> Any:
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
RULES: dict[str, FieldRule] = {
    "favorite": FieldRule(lambda a, e: a or not e, lambda s, t: s or t),
    "visibility": FieldRule(_covers_visibility, lambda s, t: t if s == "timeline" else s),
    "description": FieldRule(_covers_scalar, _source_unless_empty),
    "rating": FieldRule(_covers_scalar, _source_unless_empty),
    "taken_at": FieldRule(_covers_scalar, _source_unless_empty),
    "time_zone": FieldRule(_covers_scalar, _source_unless_empty),
    "gps": FieldRule(_covers_scalar, _source_unless_empty),
    "tags": FieldRule(_covers_set, _union),
    "albums": FieldRule(_covers_set, _union),
    "covers": FieldRule(_covers_set, _union),
    "shared_links": FieldRule(_covers_set, _union),
    "stack": FieldRule(_covers_stack, _merge_stack),
    "live_video": FieldRule(_covers_scalar, _source_unless_empty),
    "edits": FieldRule(_covers_scalar, _source_unless_empty),
    "metadata": FieldRule(_covers_set, _union),
    "faces": FieldRule(_covers_faces, _union),
}
assert set(RULES) == {f.name for f in fields(Record)}, "every record field needs a rule"


def differences(expected: Record, actual: Record) -> list[Difference]:
    """Where `actual` (the target) does not cover `expected`; empty when deletion is safe."""
    found = []
    for name, rule in RULES.items():
        want, have = getattr(expected, name), getattr(actual, name)
        if not rule.covers(have, want):
            found.append(Difference(name, want, have))
    return found


def merge(source: Record, target: Record) -> Record:
    """What the target must hold after the source is merged into it: the source's curation wins where
    it has any, the target keeps what the source leaves empty, sets are united."""
    return Record(**{name: rule.merge(getattr(source, name), getattr(target, name)) for name, rule in RULES.items()})


# --- writes: what makes a target cover a record ------------------------------------------------


@dataclass(frozen=True)
class Write:
    """One change to the target; `move` turns each kind into Immich calls."""

    kind: str
    args: Mapping[str, Any] = field(default_factory=dict)


def writes_for(expected: Record, actual: Record, source: Facts, *, can_copy: bool, can_edit: bool,
               can_metadata: bool = True) -> list[Write]:
    """The writes, in the order they must happen, that make `actual` cover `expected`.

    Order matters on a real Immich: PUT /assets/copy replaces the target's XMP sidecar and re-reads
    metadata from it, so anything written before the copy can be lost. The copy comes first.
    """
    out: list[Write] = []
    missing = {d.field for d in differences(expected, actual)}
    asset = source.asset

    copy_albums = "albums" in missing
    copy_links = "shared_links" in missing
    join_stack = "stack" in missing and asset.stack is not None and not (
        actual.stack is not None and expected.stack is not None and expected.stack.others <= actual.stack.others
    )
    if can_copy and (copy_albums or copy_links or join_stack):
        out.append(Write("copy", {"albums": copy_albums, "shared_links": copy_links, "stack": join_stack}))
    else:
        if copy_albums:
            out.append(Write("add_albums", {"album_ids": sorted(expected.albums - (actual.albums or frozenset()))}))
        if copy_links:
            out.append(Write("add_shared_links", {"link_ids": sorted(expected.shared_links - (actual.shared_links or frozenset()))}))
        if join_stack and asset.stack is not None:
            out.append(Write("join_stack", {"primary_id": asset.stack.primaryAssetId}))

    scalars: dict[str, Any] = {}
    if "favorite" in missing:
        scalars["isFavorite"] = True
    if "visibility" in missing:
        scalars["visibility"] = expected.visibility
    if "description" in missing:
        scalars["description"] = expected.description
    if "rating" in missing:
        scalars["rating"] = expected.rating
    if "taken_at" in missing or "time_zone" in missing:
        if expected.taken_at:
            scalars["dateTimeOriginal"] = expected.taken_at
        if expected.time_zone:
            scalars["timeZone"] = expected.time_zone
    if "gps" in missing and expected.gps is not None:
        scalars["latitude"], scalars["longitude"] = expected.gps
    if scalars:
        out.append(Write("set_fields", scalars))

    if "tags" in missing:
        by_value = {t.value: t.id for t in asset.tags or ()}
        wanted = sorted(expected.tags - actual.tags)
        out.append(Write("add_tags", {"tag_ids": [by_value[v] for v in wanted if v in by_value]}))
    if "live_video" in missing:
        out.append(Write("link_live_video", {}))
    if "stack" in missing and expected.stack is not None and expected.stack.primary_is_self:
        out.append(Write("make_stack_primary", {}))
    if "edits" in missing and can_edit and source.edits is not None:
        out.append(Write("set_edits", {"edits": [{"action": e.action, "parameters": e.parameters} for e in source.edits]}))
    if "metadata" in missing and can_metadata and source.metadata is not None:
        have = actual.metadata or frozenset()
        items = [(m.key, m.value) for m in source.metadata
                 if m.key != MARKER and (m.key, _canonical_json(m.value)) not in have]
        out.append(Write("put_metadata", {"items": items}))
    if "covers" in missing:
        out.append(Write("set_covers", {"album_ids": sorted(expected.covers - (actual.covers or frozenset()))}))
    if "faces" in missing and expected.faces:
        out.append(Write("add_faces", {}))
    return out



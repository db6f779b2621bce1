"""What was read about an asset (`Facts`), and how values read from Immich are put in one canonical
form (instants, JSON values, edits, face boxes as fractions of the image). Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from job import journal
from job.clock import instant
from job.immich.models import Album, Asset, Edit, Face, MetadataItem, Stack

FACE_IOU = 0.5


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

    def marker(self, key: str = journal.KEY) -> dict[str, Any] | None:
        """Our journal (on a source) or provenance (on a target), or the claim with `journal.CLAIM_KEY`."""
        return journal.value_of(self.metadata, key)


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


def normalize_instant(value: str | None) -> str | None:
    """Any ISO timestamp -> UTC 'YYYY-MM-DDTHH:MM:SS.mmmZ' (Immich answers with several spellings)."""
    if not value:
        return None
    moment = instant(value)
    return instant_text(moment) if moment is not None else value


def instant_text(moment: datetime) -> str:
    """An aware time in Immich's spelling: UTC 'YYYY-MM-DDTHH:MM:SS.mmmZ'."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def round6(value: float) -> float:
    return round(value, 6)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def canonical_edit(edit: Edit) -> tuple[str, str]:
    params = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in edit.parameters.items()}
    return (edit.action, canonical_json(params))


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


def unmatched_faces(expected: frozenset[FaceBox], actual: frozenset[FaceBox]) -> list[FaceBox]:
    """Expected faces with no actual face of the same person overlapping it (IoU >= FACE_IOU)."""
    return [
        e for e in sorted(expected, key=lambda b: (b.person_id, b.x1, b.y1))
        if not any(a.person_id == e.person_id and a.iou(e) >= FACE_IOU for a in actual)
    ]

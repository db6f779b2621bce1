"""People: the sources' faces on the target, and a person's cover kept on a photo that stays."""

from __future__ import annotations

from job.clock import seconds
from job.facts import FACE_IOU, FaceBox, Facts, face_box, unmatched_faces
from job.immich import errors
from job.immich.models import Face
from job.move.context import Member, RunContext, Waiting


def reconcile(ctx: RunContext, member: Member, target: Facts) -> None:
    """Give every face of the sources' people a matching face on the target: assign a detected face
    that overlaps it, or create one when detection is off, found nothing there, or is late."""
    expected = member.expected.faces if member.expected else None
    missing = unmatched_faces(expected or frozenset(), boxes(target.faces or ()))
    if not missing:
        return
    source_faces = {face_box(f): f for s in member.sources for f in s.faces or () if f.person}
    detected_any = any(f.sourceType == "machine-learning" for f in target.faces or ())
    now = ctx.clock.time()
    created_at = seconds(target.asset.createdAt) or now
    may_create = not ctx.caps.facial_recognition or detected_any or now - created_at >= ctx.settings.face_wait
    waiting = False
    for want in missing:
        overlapping = [f for f in target.faces or () if (box := face_box(f, any_person=True)) and box.iou(want) >= FACE_IOU]
        if overlapping:
            ctx.client.reassign_face(overlapping[0].id, want.person_id)
        elif may_create:
            face = source_faces.get(want)
            if face is None:
                continue
            ctx.client.create_face(
                asset_id=member.target_id, person_id=want.person_id, x=face.boundingBoxX1, y=face.boundingBoxY1,
                width=face.boundingBoxX2 - face.boundingBoxX1, height=face.boundingBoxY2 - face.boundingBoxY1,
                image_width=face.imageWidth, image_height=face.imageHeight,
            )
        else:
            waiting = True
    if waiting:
        raise Waiting(f"{len(missing)} faces wait for Immich's face detection on the new asset")


def keep_covers(ctx: RunContext, member: Member) -> None:
    """Immich does not say which photo is a person's cover. When the sources are the person's only
    photos besides their new twin, the cover must be on it: point it at the twin before deleting."""
    people = sorted({f.person.id for s in member.sources for f in s.faces or () if f.person})
    for person_id in people:
        try:
            if ctx.client.person_asset_count(person_id) <= len(member.sources) + 1:
                ctx.client.set_person_feature(person_id, member.target_id)
        except (errors.PermissionMissing, errors.Forbidden, errors.BadRequest, errors.NotFound):
            continue  # optional: the person keeps its current cover image


def boxes(faces: tuple[Face, ...]) -> frozenset[FaceBox]:
    return frozenset(b for b in map(face_box, faces) if b is not None)



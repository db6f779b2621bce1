"""Immich's answer shapes (field names and order as in ../shared/immich/samples-3.1.0/)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from tests.fake_immich.state import Album, Asset, Face, Person, SharedLink, Tag, User, World, b64, iso


def user(u: User) -> dict[str, Any]:
    return {"id": u.id, "email": u.email, "name": u.name, "profileImagePath": "", "avatarColor": "gray",
            "profileChangedAt": "2026-11-25T00:29:32.35229+00:00"}


def me(u: User) -> dict[str, Any]:
    return {**user(u), "storageLabel": None, "shouldChangePassword": False, "isAdmin": u.is_admin,
            "createdAt": "2026-11-25T00:29:32.352Z", "deletedAt": None, "updatedAt": "2026-11-25T00:29:32.352Z",
            "oauthId": "", "quotaSizeInBytes": None, "quotaUsageInBytes": 0, "status": "active", "license": None}


def tag(t: Tag) -> dict[str, Any]:
    out: dict[str, Any] = {"id": t.id}
    if t.parent_id:
        out["parentId"] = t.parent_id
    out.update({"name": t.name, "value": t.value, "createdAt": iso(t.created_at), "updatedAt": iso(t.created_at)})
    return out


def person(p: Person) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "birthDate": None, "thumbnailPath": f"/data/thumbs/{p.owner_id}/{p.id}.jpeg",
            "isHidden": False, "isFavorite": False, "updatedAt": "2026-11-25T00:36:27.874Z"}


def _local(exif: dict[str, Any], fallback: str) -> str:
    taken = exif.get("dateTimeOriginal")
    if not taken:
        return fallback
    moment = datetime.fromisoformat(taken)
    zone = exif.get("timeZone")
    offset = timedelta(0)
    if zone:
        if zone.startswith("UTC") and len(zone) > 3:
            offset = timedelta(hours=float(zone[3:]))
        else:
            try:
                offset = moment.astimezone(ZoneInfo(zone)).utcoffset() or timedelta(0)
            except Exception:  # an unknown zone name reads as UTC
                offset = timedelta(0)
    return iso((moment + offset).replace(tzinfo=timezone.utc).timestamp())


def _exif(world: World, a: Asset) -> dict[str, Any]:
    if not world.is_extracted(a):  # before extraction only the size is known (real 3.1.0)
        keys = ("make", "model", "exifImageWidth", "exifImageHeight", "fileSizeInByte", "orientation", "dateTimeOriginal",
                "modifyDate", "timeZone", "lensModel", "fNumber", "focalLength", "iso", "exposureTime", "latitude",
                "longitude", "city", "state", "country", "description", "projectionType", "rating")
        return {k: (a.blob.size if k == "fileSizeInByte" else "" if k == "description" else None) for k in keys}
    return dict(a.exif)


def _duration(world: World, a: Asset) -> Any:
    if a.duration is None:
        return None
    if world.version < (3, 0, 0):
        return f"0:00:{a.duration / 1000:09.6f}"
    return a.duration


def asset(world: World, a: Asset, viewer: User, *, full: bool = True, with_exif: bool = True,
          with_people: bool = False) -> dict[str, Any]:
    """`full`: as GET /assets/{id} shows it (owner, tags, stack, people); else as a search lists it, with
    people only `with_people` (3.1.0 mapAsset: `peopleFromFaces(undefined)` is [])."""
    world.read_asset(a)
    extracted = world.is_extracted(a)
    exif = _exif(world, a)
    people = []
    if a.owner_id == viewer.id and (full or with_people):
        seen = set()
        for face in world.faces.values():
            if face.asset_id == a.id and face.person_id and face.person_id not in seen and face.person_id in world.people:
                seen.add(face.person_id)
                people.append(person(world.people[face.person_id]))
    out: dict[str, Any] = {"id": a.id, "createdAt": iso(a.created_at), "ownerId": a.owner_id}
    if full:
        out["owner"] = user(world.users[a.owner_id])
    out.update({
        "libraryId": a.library_id, "type": a.type, "originalPath": a.original_path,
        "originalFileName": a.original_file_name, "originalMimeType": a.mime,
        "thumbhash": "3DwCBYCFeJmokrN4d9FnYIUKAI14" if extracted else None,
        "fileCreatedAt": a.file_created_at, "fileModifiedAt": a.file_modified_at,
        "localDateTime": _local(exif, a.file_created_at), "updatedAt": iso(a.updated_at),
        "isFavorite": a.is_favorite and a.owner_id == viewer.id, "isArchived": a.visibility == "archive",
        "isTrashed": a.deleted_at is not None, "visibility": a.visibility, "duration": _duration(world, a),
    })
    if with_exif:
        out["exifInfo"] = exif
    out["livePhotoVideoId"] = a.live_photo_video_id
    if full:
        out["tags"] = [tag(world.tags[t]) for t in a.tag_ids if t in world.tags] if extracted else []
    out["people"] = people
    out["checksum"] = b64(a.checksum)
    if full:
        stack = world.stacks.get(a.stack_id or "")
        out["stack"] = ({"id": stack.id, "primaryAssetId": stack.primary_asset_id,
                         "assetCount": len(world.stack_members(stack.id))} if stack else None)
    out.update({"isOffline": a.is_offline, "hasMetadata": True, "duplicateId": None, "resized": True,
                "width": a.width if extracted else None, "height": a.height if extracted else None,
                "isEdited": bool(a.edits)})
    return out


def album(world: World, al: Album) -> dict[str, Any]:
    members = [world.assets[i] for i in al.asset_ids if i in world.assets and world.assets[i].deleted_at is None]
    users = sorted(al.users.items(), key=lambda item: item[1] != "owner")
    shared = len(al.users) > 1 or any(link.album_id == al.id for link in world.links.values())
    dates = sorted(m.file_created_at for m in members)
    out = {
        "albumName": al.name, "description": "", "albumThumbnailAssetId": al.thumbnail_asset_id,
        "createdAt": iso(al.created_at), "updatedAt": iso(al.updated_at), "id": al.id,
        "albumUsers": [{"user": user(world.users[uid]), "role": role} for uid, role in users],
        "shared": shared, "hasSharedLink": any(link.album_id == al.id for link in world.links.values()),
        "assetCount": len(members), "isActivityEnabled": al.activity_enabled, "order": "desc",
    }
    if dates:
        out.update({"startDate": dates[0], "endDate": dates[-1], "lastModifiedAssetTimestamp": iso(time.time())})
    return out


def face(world: World, f: Face, viewer: User) -> dict[str, Any]:
    owner = world.people.get(f.person_id or "")
    return {
        "id": f.id, "boundingBoxX1": f.box[0], "boundingBoxY1": f.box[1], "boundingBoxX2": f.box[2],
        "boundingBoxY2": f.box[3], "imageWidth": f.image_width, "imageHeight": f.image_height,
        "sourceType": f.source_type,
        "person": person(owner) if owner and owner.owner_id == viewer.id else None,
    }


def shared_link(world: World, link: SharedLink, viewer: User) -> dict[str, Any]:
    assets = [asset(world, world.assets[i], viewer) for i in link.asset_ids if i in world.assets]
    return {"id": link.id, "type": link.type, "key": link.id.replace("-", ""), "userId": link.owner_id,
            "assets": assets, "album": None, "allowUpload": False, "allowDownload": True, "showMetadata": True,
            "createdAt": "2026-11-25T00:36:27.440Z", "expiresAt": None, "description": None, "password": None}

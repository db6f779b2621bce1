"""The curated state of an asset on a real Immich, read through its API, written independently of the
job's own `record` module. Other assets are named by their CONTENT (the SHA-1 of their file's bytes),
which survives the move from external to internal."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from tests.e2e.immich import Api

MARKER = "immich-ext2int"


class Contents:
    """asset id -> content SHA-1 (base64): internal assets carry it as their checksum; external ones
    are looked up from the files on disk (their checksum is of the path)."""

    def __init__(self, api: Api, disk: dict[str, str]):
        self.api, self.disk, self.cache = api, disk, {}

    def of(self, asset_id: str) -> str:
        if asset_id not in self.cache:
            asset = self.api.asset(asset_id)
            self.cache[asset_id] = self.disk.get(asset["originalPath"], asset["checksum"]) if asset["libraryId"] \
                else asset["checksum"]
        return self.cache[asset_id]


def _instant(value: str | None) -> str | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc).isoformat()


def curated(api: Api, asset_id: str, contents: Contents) -> dict[str, Any]:
    asset = api.asset(asset_id)
    exif = asset.get("exifInfo") or {}
    me = contents.of(asset_id)
    albums = api.get("/albums", params={"assetId": asset_id})
    faces = []
    for face in api.get("/faces", params={"id": asset_id}):
        if face.get("person"):
            w, h = face["imageWidth"], face["imageHeight"]
            box = (face["boundingBoxX1"] / w, face["boundingBoxY1"] / h, face["boundingBoxX2"] / w, face["boundingBoxY2"] / h)
            faces.append((face["person"]["id"], tuple(round(v, 2) for v in box)))
    stack = None
    if asset.get("stack"):
        members = api.get(f"/stacks/{asset['stack']['id']}")
        stack = {
            "others": sorted({contents.of(m["id"]) for m in members["assets"]} - {me}),
            "primary": contents.of(members["primaryAssetId"]) == me,
        }
    edits = api.get(f"/assets/{asset_id}/edits")["edits"]
    return {
        "favorite": asset["isFavorite"],
        "visibility": asset["visibility"],
        "description": exif.get("description") or "",
        "rating": exif.get("rating"),
        "taken": _instant(exif.get("dateTimeOriginal")),
        "timeZone": exif.get("timeZone"),
        "gps": (round(exif["latitude"], 5), round(exif["longitude"], 5)) if exif.get("latitude") is not None else None,
        "tags": sorted(t["value"] for t in asset.get("tags") or []),
        "albums": sorted(a["id"] for a in albums),
        "covers": sorted(a["id"] for a in albums if a["albumThumbnailAssetId"] and
                         contents.of(a["albumThumbnailAssetId"]) == me and
                         not api.asset(a["albumThumbnailAssetId"])["isTrashed"]),
        "stack": stack,
        "live": contents.of(asset["livePhotoVideoId"]) if asset.get("livePhotoVideoId") else None,
        "faces": sorted(faces),
        "edits": [(e["action"], sorted(e["parameters"].items())) for e in edits],
        "metadata": sorted((m["key"], repr(sorted(m["value"].items()))) for m in api.get(f"/assets/{asset_id}/metadata")
                           if not m["key"].startswith(MARKER)),  # the journal, provenance and claims are the job's
    }


def missing(source: dict[str, Any], target: dict[str, Any]) -> list[str]:
    """What the target lacks of the source (sets may grow; an empty source value needs nothing)."""
    problems = []
    for name, want in source.items():
        have = target[name]
        if name in ("tags", "albums", "covers", "metadata"):
            if not set(map(str, want)) <= set(map(str, have)):
                problems.append(f"{name}: {want} not within {have}")
        elif name == "faces":
            for person, box in want:
                if not any(p == person and _iou(box, b) > 0.5 for p, b in have):
                    problems.append(f"face of {person} at {box} missing from {have}")
        elif name == "stack":
            if want and (not have or not set(want["others"]) <= set(have["others"]) or (want["primary"] and not have["primary"])):
                problems.append(f"stack: {want} vs {have}")
        elif name == "favorite":
            if want and not have:
                problems.append("favorite lost")
        elif want not in (None, "", []) and want != have:
            problems.append(f"{name}: {want!r} != {have!r}")
    return problems


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union if union else 0.0

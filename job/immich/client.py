"""One method per Immich endpoint the job uses. Callers never build URLs or parse raw JSON.

Facts about each endpoint (what it copies, what it ignores, which traps it holds) are in the README's
"What we learned about Immich" section and in comments here where they change what the method does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from pydantic import BaseModel, ValidationError

from job.immich import errors
from job.immich.http import Transport, parse_json
from job.immich.models import (
    Album,
    Asset,
    Edit,
    Face,
    Library,
    LibraryStatistics,
    Memory,
    MetadataItem,
    QueueBacklog,
    SearchPage,
    ServerFeatures,
    ServerVersion,
    SharedLink,
    Stack,
    UploadResult,
    User,
)
from job.immich.multipart import MultipartBody, Readable

M = TypeVar("M", bound=BaseModel)

MIN_VERSION = (2, 0, 0)
# Queues whose backlog means Immich is still digesting uploads (see GET /queues).
HEAVY_QUEUES = ("thumbnailGeneration", "metadataExtraction", "videoConversion", "faceDetection",
                "facialRecognition", "smartSearch", "duplicateDetection", "sidecar", "ocr")


@dataclass(frozen=True)
class Capabilities:
    """What this server offers, detected once per run."""

    version: ServerVersion
    copy: bool  # PUT /assets/copy (v2.2)
    edits: bool  # /assets/{id}/edits (v2.5)
    bulk_metadata: bool  # PUT /assets/metadata (v2.5)
    facial_recognition: bool
    trash: bool

    @classmethod
    def of(cls, version: ServerVersion, features: ServerFeatures) -> Capabilities:
        v = version.tuple
        return cls(
            version=version,
            copy=v >= (2, 2, 0),
            edits=v >= (2, 5, 0),
            bulk_metadata=v >= (2, 5, 0),
            facial_recognition=features.facialRecognition,
            trash=features.trash,
        )


def parse(model: type[M], data: Any, call: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise errors.UnexpectedResponse(call, f"answer has a shape we do not know ({where}: {first['msg']})") from None


def parse_list(model: type[M], data: Any, call: str) -> list[M]:
    if not isinstance(data, list):
        raise errors.UnexpectedResponse(call, "answer has a shape we do not know (expected a list)")
    return [parse(model, item, call) for item in data]


class ImmichClient:
    def __init__(self, transport: Transport):
        self.t = transport

    @property
    def read_only(self) -> bool:
        return self.t.read_only

    def close(self) -> None:
        self.t.close()

    # --- server, user, libraries --------------------------------------------------------------

    def server_version(self) -> ServerVersion:
        data = self.t.json("GET", "/server/version")
        if not isinstance(data, dict) or "major" not in data:
            raise errors.NotImmich("GET /api/server/version", "did not answer like an Immich server")
        return parse(ServerVersion, data, "GET /api/server/version")

    def server_features(self) -> ServerFeatures:
        return parse(ServerFeatures, self.t.json("GET", "/server/features"), "GET /api/server/features")

    def me(self) -> User:
        return parse(User, self.t.json("GET", "/users/me"), "GET /api/users/me")

    def libraries(self) -> list[Library]:
        return parse_list(Library, self.t.json("GET", "/libraries"), "GET /api/libraries")

    def library(self, library_id: str) -> Library:
        return parse(Library, self.t.json("GET", f"/libraries/{library_id}"), "GET /api/libraries/{id}")

    def library_statistics(self, library_id: str) -> LibraryStatistics:
        call = "GET /api/libraries/{id}/statistics"
        return parse(LibraryStatistics, self.t.json("GET", f"/libraries/{library_id}/statistics"), call)

    # --- listing ------------------------------------------------------------------------------

    def search_assets(self, *, page: int = 1, size: int = 1000, with_exif: bool = True, **filters: Any) -> SearchPage:
        """POST /search/metadata. Without `visibility` Immich returns timeline, archive and hidden (live
        video halves) but never locked; without `withDeleted` no trashed assets."""
        body = {"page": page, "size": size, "withExif": with_exif, **{k: v for k, v in filters.items() if v is not None}}
        data = self.t.json("POST", "/search/metadata", json_body=body)
        call = "POST /api/search/metadata"
        if not isinstance(data, dict) or not isinstance(data.get("assets"), dict):
            raise errors.UnexpectedResponse(call, "answer has a shape we do not know (no 'assets')")
        return parse(SearchPage, data["assets"], call)

    def iter_assets(self, *, size: int = 1000, **filters: Any) -> Iterator[Asset]:
        page: int | None = 1
        while page is not None:
            result = self.search_assets(page=page, size=size, **filters)
            yield from result.items
            page = int(result.nextPage) if result.nextPage else None

    def count_assets(self, **filters: Any) -> int:
        data = self.t.json("POST", "/search/statistics", json_body={k: v for k, v in filters.items() if v is not None})
        if not isinstance(data, dict) or not isinstance(data.get("total"), int):
            raise errors.UnexpectedResponse("POST /api/search/statistics", "answer has a shape we do not know")
        return data["total"]

    def find_by_checksum(self, checksum: str) -> list[Asset]:
        """Every asset of the user with this checksum (base64 or hex), trashed ones included."""
        return self.search_assets(checksum=checksum, withDeleted=True, with_exif=True).items

    # --- reading one asset --------------------------------------------------------------------

    def asset(self, asset_id: str) -> Asset:
        return parse(Asset, self.t.json("GET", f"/assets/{asset_id}"), "GET /api/assets/{id}")

    def albums_of(self, asset_id: str) -> list[Album]:
        data = self.t.json("GET", "/albums", params={"assetId": asset_id})
        if not isinstance(data, list):
            raise errors.UnexpectedResponse("GET /api/albums", "answer has a shape we do not know (expected a list)")
        try:
            return [Album.from_api(item) for item in data]
        except ValidationError as exc:
            raise errors.UnexpectedResponse("GET /api/albums", f"answer has a shape we do not know ({exc.errors()[0]['msg']})") from None

    def faces_of(self, asset_id: str) -> list[Face]:
        return parse_list(Face, self.t.json("GET", "/faces", params={"id": asset_id}), "GET /api/faces")

    def edits_of(self, asset_id: str) -> list[Edit]:
        data = self.t.json("GET", f"/assets/{asset_id}/edits")
        call = "GET /api/assets/{id}/edits"
        if not isinstance(data, dict):
            raise errors.UnexpectedResponse(call, "answer has a shape we do not know")
        return parse_list(Edit, data.get("edits", []), call)

    def metadata_of(self, asset_id: str) -> list[MetadataItem]:
        return parse_list(MetadataItem, self.t.json("GET", f"/assets/{asset_id}/metadata"), "GET /api/assets/{id}/metadata")

    def stack(self, stack_id: str) -> Stack:
        return parse(Stack, self.t.json("GET", f"/stacks/{stack_id}"), "GET /api/stacks/{id}")

    def shared_links(self) -> list[SharedLink]:
        return parse_list(SharedLink, self.t.json("GET", "/shared-links"), "GET /api/shared-links")

    def shared_link(self, link_id: str) -> SharedLink:
        return parse(SharedLink, self.t.json("GET", f"/shared-links/{link_id}"), "GET /api/shared-links/{id}")

    def memories(self) -> list[Memory]:
        return parse_list(Memory, self.t.json("GET", "/memories"), "GET /api/memories")

    def activity_count(self, album_id: str, asset_id: str) -> int:
        data = self.t.json("GET", "/activities/statistics", params={"albumId": album_id, "assetId": asset_id})
        if not isinstance(data, dict):
            raise errors.UnexpectedResponse("GET /api/activities/statistics", "answer has a shape we do not know")
        return int(data.get("comments", 0)) + int(data.get("likes", 0))

    def person_asset_count(self, person_id: str) -> int:
        data = self.t.json("GET", f"/people/{person_id}/statistics")
        if not isinstance(data, dict):
            raise errors.UnexpectedResponse("GET /api/people/{id}/statistics", "answer has a shape we do not know")
        return int(data.get("assets", 0))

    def queue_backlog(self) -> QueueBacklog:
        """Jobs waiting or active in Immich's heavy queues. GET /queues (3.x), else GET /jobs (2.x)."""
        try:
            data = self.t.json("GET", "/queues")
            if isinstance(data, list):
                counts = {
                    q["name"]: int(q["statistics"].get("active", 0)) + int(q["statistics"].get("waiting", 0))
                    for q in data
                    if isinstance(q, dict) and q.get("name") in HEAVY_QUEUES
                }
                return QueueBacklog(counts=counts)
        except errors.NotFound:
            pass
        data = self.t.json("GET", "/jobs")
        if not isinstance(data, dict):
            raise errors.UnexpectedResponse("GET /api/jobs", "answer has a shape we do not know")
        counts = {
            name: int(q.get("jobCounts", {}).get("active", 0)) + int(q.get("jobCounts", {}).get("waiting", 0))
            for name, q in data.items()
            if name in HEAVY_QUEUES and isinstance(q, dict)
        }
        return QueueBacklog(counts=counts)

    # --- bytes --------------------------------------------------------------------------------

    @contextmanager
    def open_original(self, asset_id: str) -> Iterator[requests.Response]:
        """GET /assets/{id}/original as a stream (the original, not an edited rendition)."""
        response = self.t.request(
            "GET", f"/assets/{asset_id}/original", stream=True, expect=(200,), headers={"Accept": "*/*", "Accept-Encoding": "identity"}
        )
        try:
            yield response
        finally:
            response.close()

    def upload(
        self,
        *,
        stream: Readable,
        length: int | None,
        filename: str,
        content_type: str,
        file_created_at: str,
        file_modified_at: str,
        visibility: str | None = None,
        is_favorite: bool | None = None,
        live_photo_video_id: str | None = None,
        duration: int | str | None = None,
        metadata: dict[str, dict[str, Any]] | None = None,
        late_metadata: tuple[int, Callable[[], str]] | None = None,
        device_asset_id: str | None = None,
        checksum: str | None = None,
    ) -> UploadResult:
        """POST /assets, multipart, streaming `stream` as the file. 201 created, 200 duplicate: Immich
        dedups on (owner, SHA-1 of the bytes) among internal assets only, trashed ones included.
        Immich 2.x requires deviceAssetId and deviceId; 3.x ignores them."""
        fields: list[tuple[str, str]] = [
            ("deviceAssetId", device_asset_id or filename), ("deviceId", "immich-ext2int"),
            ("fileCreatedAt", file_created_at), ("fileModifiedAt", file_modified_at), ("filename", filename),
        ]
        if visibility:
            fields.append(("visibility", visibility))
        if is_favorite is not None:
            fields.append(("isFavorite", "true" if is_favorite else "false"))
        if live_photo_video_id:
            fields.append(("livePhotoVideoId", live_photo_video_id))
        if duration:
            fields.append(("duration", str(duration)))
        if metadata:
            fields.append(("metadata", json.dumps([{"key": k, "value": v} for k, v in metadata.items()])))
        # `late_metadata`: the metadata field sent AFTER the file (Immich reads the whole form before
        # validating it), so it can hold the checksum of the bytes just streamed: (length, value).
        after = [("metadata", late_metadata[0], late_metadata[1])] if late_metadata else None
        body = MultipartBody(fields, "assetData", filename, content_type, stream, length, after)
        headers = {"Content-Type": body.content_type}
        if checksum:
            headers["x-immich-checksum"] = checksum
        response = self.t.request("POST", "/assets", data=body, headers=headers, expect=(200, 201))
        return parse(UploadResult, parse_json("POST /api/assets", response), "POST /api/assets")

    # --- writes -------------------------------------------------------------------------------

    def restore(self, asset_ids: list[str]) -> None:
        self.t.request("POST", "/trash/restore/assets", json_body={"ids": asset_ids})

    def copy(self, source_id: str, target_id: str, *, albums: bool, shared_links: bool, stack: bool,
             favorite: bool, sidecar: bool) -> None:
        """PUT /assets/copy (v2.2+). Copies album and shared-link memberships, stack, favourite and the
        XMP sidecar, nothing else. NOT idempotent with stack=true: see http._UNSAFE_PUTS."""
        self.t.request("PUT", "/assets/copy", json_body={
            "sourceId": source_id, "targetId": target_id, "albums": albums, "sharedLinks": shared_links,
            "stack": stack, "favorite": favorite, "sidecar": sidecar,
        })

    def update_assets(self, asset_ids: list[str], **fields: Any) -> None:
        """PUT /assets: isFavorite, visibility, description, dateTimeOriginal (+ timeZone), latitude and
        longitude together, rating. The bulk form is the only one that takes an IANA timeZone."""
        self.t.request("PUT", "/assets", json_body={"ids": asset_ids, **fields})

    def update_asset(self, asset_id: str, **fields: Any) -> Asset:
        return parse(Asset, self.t.json("PUT", f"/assets/{asset_id}", json_body=fields), "PUT /api/assets/{id}")

    def tag_assets(self, tag_ids: list[str], asset_ids: list[str]) -> None:
        self.t.request("PUT", "/tags/assets", json_body={"tagIds": tag_ids, "assetIds": asset_ids})

    def add_to_albums(self, album_ids: list[str], asset_ids: list[str]) -> None:
        for album_id in album_ids:
            self.t.request("PUT", f"/albums/{album_id}/assets", json_body={"ids": asset_ids})

    def set_album_cover(self, album_id: str, asset_id: str) -> None:
        self.t.request("PATCH", f"/albums/{album_id}", json_body={"albumThumbnailAssetId": asset_id})

    def add_to_shared_link(self, link_id: str, asset_ids: list[str]) -> None:
        self.t.request("PUT", f"/shared-links/{link_id}/assets", json_body={"assetIds": asset_ids})

    def create_stack(self, asset_ids: list[str]) -> Stack:
        """POST /stacks: the first id becomes primary; stacks whose primary is listed are merged in."""
        return parse(Stack, self.t.json("POST", "/stacks", json_body={"assetIds": asset_ids}), "POST /api/stacks")

    def set_stack_primary(self, stack_id: str, primary_asset_id: str) -> None:
        self.t.request("PUT", f"/stacks/{stack_id}", json_body={"primaryAssetId": primary_asset_id})

    def set_edits(self, asset_id: str, edits: list[dict[str, Any]]) -> None:
        self.t.request("PUT", f"/assets/{asset_id}/edits", json_body={"edits": edits})

    def upsert_metadata(self, items: list[tuple[str, str, dict[str, Any]]], bulk: bool = True) -> list[MetadataItem]:
        """Write key/values [(asset_id, key, value)]; returns what the server stored, for read-back."""
        if bulk:
            body = {"items": [{"assetId": a, "key": k, "value": v} for a, k, v in items]}
            data = self.t.json("PUT", "/assets/metadata", json_body=body)
            return parse_list(MetadataItem, data or [], "PUT /api/assets/metadata")
        stored: list[MetadataItem] = []
        by_asset: dict[str, list[dict[str, Any]]] = {}
        for asset_id, key, value in items:
            by_asset.setdefault(asset_id, []).append({"key": key, "value": value})
        for asset_id, entries in by_asset.items():
            data = self.t.json("PUT", f"/assets/{asset_id}/metadata", json_body={"items": entries})
            stored.extend(parse_list(MetadataItem, data or [], "PUT /api/assets/{id}/metadata"))
        return stored

    def create_face(self, *, asset_id: str, person_id: str, x: int, y: int, width: int, height: int,
                    image_width: int, image_height: int) -> None:
        self.t.request("POST", "/faces", json_body={
            "assetId": asset_id, "personId": person_id, "x": x, "y": y, "width": width, "height": height,
            "imageWidth": image_width, "imageHeight": image_height,
        })

    def reassign_face(self, face_id: str, person_id: str) -> None:
        """PUT /faces/{personId} {id: faceId}: the path names the PERSON, the body the face."""
        self.t.request("PUT", f"/faces/{person_id}", json_body={"id": face_id})

    def set_person_feature(self, person_id: str, asset_id: str) -> None:
        self.t.request("PUT", f"/people/{person_id}", json_body={"featureFaceAssetId": asset_id})

    def delete_assets(self, asset_ids: list[str], *, force: bool) -> None:
        self.t.request("DELETE", "/assets", json_body={"ids": asset_ids, "force": force})

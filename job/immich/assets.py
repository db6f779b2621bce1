"""Assets: reading one, its bytes, uploading, changing, copying curation, trash and deletion.

`delete_assets` is called from one place only: the delete gate (`job/move/gate.py`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import requests

from job.immich.endpoints import ENDPOINTS as E
from job.immich.errors import UnexpectedResponse
from job.immich.http import parse_json
from job.immich.models import Asset, Edit, MetadataItem, UploadResult, parse, parse_list
from job.immich.multipart import MultipartBody, Readable

if TYPE_CHECKING:
    from job.immich.http import Transport


class AssetCalls:
    t: Transport

    # --- reading --------------------------------------------------------------------------------

    def asset(self, asset_id: str) -> Asset:
        return parse(Asset, self.t.json(E["asset"], asset_id), E["asset"].call)

    def metadata_of(self, asset_id: str) -> list[MetadataItem]:
        return parse_list(MetadataItem, self.t.json(E["metadata"], asset_id), E["metadata"].call)

    def edits_of(self, asset_id: str) -> list[Edit]:
        data = self.t.json(E["edits"], asset_id)
        if not isinstance(data, dict):
            raise UnexpectedResponse(E["edits"].call, "answer has a shape we do not know")
        return parse_list(Edit, data.get("edits", []), E["edits"].call)

    # --- bytes ------------------------------------------------------------------------------------

    @contextmanager
    def open_original(self, asset_id: str) -> Iterator[requests.Response]:
        """GET /assets/{id}/original as a stream (the original, not an edited rendition). For an external
        asset Immich serves the file as it is on disk NOW, with an ETag of its size and modification time."""
        response = self.t.request(E["original"], asset_id, stream=True, expect=(200,),
                                  headers={"Accept": "*/*", "Accept-Encoding": "identity"})
        try:
            yield response
        finally:
            response.close()

    def original_etag(self, asset_id: str) -> str | None:
        """The ETag of the file as it is on disk now (HEAD: no bytes), or None when the server sends none."""
        response = self.t.request(E["original_head"], asset_id, expect=(200,), headers={"Accept": "*/*"})
        response.close()
        return response.headers.get("etag")

    def upload(self, *, stream: Readable, length: int | None, filename: str, content_type: str,
               file_created_at: str, file_modified_at: str, visibility: str | None = None,
               is_favorite: bool | None = None, live_photo_video_id: str | None = None,
               duration: int | str | None = None, metadata: dict[str, dict[str, Any]] | None = None,
               late_metadata: tuple[int, Callable[[], str]] | None = None,
               device_asset_id: str | None = None) -> UploadResult:
        """POST /assets, multipart, streaming `stream` as the file. 201 created, 200 duplicate: Immich
        dedups on (owner, SHA-1 of the bytes) among internal assets only, trashed ones included.
        Immich 2.x requires deviceAssetId and deviceId; 3.x ignores them. Never sends x-immich-checksum:
        Immich answers a known checksum before reading the body and may reset the connection."""
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
        response = self.t.request(E["upload"], data=body, headers={"Content-Type": body.content_type},
                                  expect=(200, 201))
        return parse(UploadResult, parse_json(E["upload"].call, response), E["upload"].call)

    # --- writes -----------------------------------------------------------------------------------

    def restore(self, asset_ids: list[str]) -> None:
        self.t.request(E["restore"], json_body={"ids": asset_ids})

    def copy(self, source_id: str, target_id: str, *, albums: bool, shared_links: bool, stack: bool,
             favorite: bool, sidecar: bool) -> None:
        """PUT /assets/copy (v2.2+). Copies album and shared-link memberships, stack, favourite and the
        XMP sidecar, nothing else. NOT idempotent with stack=true (see endpoints.py)."""
        self.t.request(E["copy"], json_body={
            "sourceId": source_id, "targetId": target_id, "albums": albums, "sharedLinks": shared_links,
            "stack": stack, "favorite": favorite, "sidecar": sidecar,
        })

    def refresh_metadata(self, asset_ids: list[str]) -> None:
        """POST /assets/jobs {name: refresh-metadata}: Immich reads the files' metadata again (queued)."""
        self.t.request(E["asset_jobs"], json_body={"assetIds": asset_ids, "name": "refresh-metadata"})

    def update_assets(self, asset_ids: list[str], **fields: Any) -> None:
        """PUT /assets: isFavorite, visibility, description, dateTimeOriginal (+ timeZone), latitude and
        longitude together, rating. The bulk form is the only one that takes an IANA timeZone."""
        self.t.request(E["update_assets"], json_body={"ids": asset_ids, **fields})

    def link_live_video(self, asset_id: str, video_id: str) -> None:
        self.t.request(E["update_asset"], asset_id, json_body={"livePhotoVideoId": video_id})

    def set_edits(self, asset_id: str, edits: list[dict[str, Any]]) -> None:
        self.t.request(E["edits_set"], asset_id, json_body={"edits": edits})

    def remove_edits(self, asset_id: str) -> None:
        self.t.request(E["edits_delete"], asset_id)

    def upsert_metadata(self, items: list[tuple[str, str, dict[str, Any]]], bulk: bool = True) -> list[MetadataItem]:
        """Write key/values [(asset_id, key, value)]; returns what the server stored, for read-back."""
        if bulk:
            body = {"items": [{"assetId": a, "key": k, "value": v} for a, k, v in items]}
            return parse_list(MetadataItem, self.t.json(E["metadata_bulk"], json_body=body) or [], E["metadata_bulk"].call)
        stored: list[MetadataItem] = []
        by_asset: dict[str, list[dict[str, Any]]] = {}
        for asset_id, key, value in items:
            by_asset.setdefault(asset_id, []).append({"key": key, "value": value})
        for asset_id, entries in by_asset.items():
            data = self.t.json(E["metadata_set"], asset_id, json_body={"items": entries})
            stored.extend(parse_list(MetadataItem, data or [], E["metadata_set"].call))
        return stored

    def delete_metadata_key(self, asset_id: str, key: str) -> None:
        self.t.request(E["metadata_delete"], asset_id, key)

    def delete_assets(self, asset_ids: list[str], *, force: bool) -> None:
        """DELETE /assets. For an external asset deleted for good (now, or when the trash is emptied)
        Immich deletes its FILE from disk, whatever else points at it. Only the delete gate calls this
        (job/move/gate.py: sources after a move, and the copies an undo takes back)."""
        self.t.request(E["delete"], json_body={"ids": asset_ids, "force": force})

"""Curation that lives beside an asset: albums, tags, stacks, faces and people, shared links, memories
and activity."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import ValidationError

from job.immich.endpoints import ENDPOINTS as E
from job.immich.errors import UnexpectedResponse
from job.immich.models import Album, Face, Memory, SharedLink, Stack, parse, parse_list

if TYPE_CHECKING:
    from job.immich.http import Transport


class CurationCalls:
    t: Transport

    # --- albums -----------------------------------------------------------------------------------

    def albums(self, asset_id: str | None = None) -> list[Album]:
        """The user's albums (shared with them included); with `asset_id`, those holding that asset."""
        data = self.t.json(E["albums"], params={"assetId": asset_id} if asset_id else None)
        if not isinstance(data, list):
            raise UnexpectedResponse(E["albums"].call, "answer has a shape we do not know (expected a list)")
        try:
            return [Album.from_api(item) for item in data]
        except ValidationError as exc:
            raise UnexpectedResponse(E["albums"].call, f"answer has a shape we do not know ({exc.errors()[0]['msg']})") from None

    def add_to_albums(self, album_ids: list[str], asset_ids: list[str]) -> None:
        for album_id in album_ids:
            self.t.request(E["album_add"], album_id, json_body={"ids": asset_ids})

    def remove_from_album(self, album_id: str, asset_ids: list[str]) -> None:
        self.t.request(E["album_remove"], album_id, json_body={"ids": asset_ids})

    def set_album_cover(self, album_id: str, asset_id: str) -> None:
        self.t.request(E["album_update"], album_id, json_body={"albumThumbnailAssetId": asset_id})

    # --- tags and stacks --------------------------------------------------------------------------

    def tag_assets(self, tag_ids: list[str], asset_ids: list[str]) -> None:
        self.t.request(E["tag_assets"], json_body={"tagIds": tag_ids, "assetIds": asset_ids})

    def untag_assets(self, tag_id: str, asset_ids: list[str]) -> None:
        self.t.request(E["tag_remove"], tag_id, json_body={"ids": asset_ids})

    def stack(self, stack_id: str) -> Stack:
        return parse(Stack, self.t.json(E["stack"], stack_id), E["stack"].call)

    def create_stack(self, asset_ids: list[str]) -> Stack:
        """POST /stacks: the first id becomes primary; stacks whose primary is listed are merged in."""
        return parse(Stack, self.t.json(E["stack_create"], json_body={"assetIds": asset_ids}), E["stack_create"].call)

    def remove_from_stack(self, stack_id: str, asset_id: str) -> None:
        self.t.request(E["stack_remove"], stack_id, asset_id)

    def set_stack_primary(self, stack_id: str, primary_asset_id: str) -> None:
        self.t.request(E["stack_update"], stack_id, json_body={"primaryAssetId": primary_asset_id})

    # --- faces and people -------------------------------------------------------------------------

    def faces_of(self, asset_id: str) -> list[Face]:
        return parse_list(Face, self.t.json(E["faces"], params={"id": asset_id}), E["faces"].call)

    def create_face(self, *, asset_id: str, person_id: str, x: int, y: int, width: int, height: int,
                    image_width: int, image_height: int) -> None:
        self.t.request(E["face_create"], json_body={
            "assetId": asset_id, "personId": person_id, "x": x, "y": y, "width": width, "height": height,
            "imageWidth": image_width, "imageHeight": image_height,
        })

    def reassign_face(self, face_id: str, person_id: str) -> None:
        """PUT /faces/{personId} {id: faceId}: the path names the PERSON, the body the face."""
        self.t.request(E["face_reassign"], person_id, json_body={"id": face_id})

    def delete_face(self, face_id: str) -> None:
        """For good (force): a face undo takes back is one the job created."""
        self.t.request(E["face_delete"], face_id, json_body={"force": True})

    def person_asset_count(self, person_id: str) -> int:
        data = self.t.json(E["person_statistics"], person_id)
        if not isinstance(data, dict):
            raise UnexpectedResponse(E["person_statistics"].call, "answer has a shape we do not know")
        return int(data.get("assets", 0))

    def set_person_feature(self, person_id: str, asset_id: str) -> None:
        self.t.request(E["person_update"], person_id, json_body={"featureFaceAssetId": asset_id})

    # --- shared links, memories, activity ---------------------------------------------------------

    def shared_links(self) -> list[SharedLink]:
        return parse_list(SharedLink, self.t.json(E["shared_links"]), E["shared_links"].call)

    def shared_link(self, link_id: str) -> SharedLink:
        return parse(SharedLink, self.t.json(E["shared_link"], link_id), E["shared_link"].call)

    def add_to_shared_link(self, link_id: str, asset_ids: list[str]) -> None:
        self.t.request(E["link_add"], link_id, json_body={"assetIds": asset_ids})

    def memories(self) -> list[Memory]:
        return parse_list(Memory, self.t.json(E["memories"]), E["memories"].call)

    def activity_count(self, album_id: str, asset_id: str) -> int:
        data = self.t.json(E["activity"], params={"albumId": album_id, "assetId": asset_id})
        if not isinstance(data, dict):
            raise UnexpectedResponse(E["activity"].call, "answer has a shape we do not know")
        return int(data.get("comments", 0)) + int(data.get("likes", 0))

"""Pydantic models of exactly the fields of Immich's answers that the job reads.

Field names are Immich's (see @immich/sdk `fetch-client.d.ts`); unknown fields are ignored, so a newer
server that adds fields keeps working, and a missing required field is an `UnexpectedResponse`.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from job.immich import errors


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ServerVersion(_Model):
    major: int
    minor: int
    patch: int

    @property
    def tuple(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


class ServerConfig(_Model):
    trashDays: int = 30  # trashed assets are deleted for good (files too) after this many days


class ServerFeatures(_Model):
    facialRecognition: bool = False
    trash: bool = True


class User(_Model):
    id: str
    email: str = ""
    name: str = ""


class Library(_Model):
    id: str
    ownerId: str
    name: str = ""
    importPaths: list[str] = Field(default_factory=list)
    exclusionPatterns: list[str] = Field(default_factory=list)


class Exif(_Model):
    fileSizeInByte: int | None = None
    dateTimeOriginal: str | None = None
    timeZone: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    description: str | None = None
    rating: int | None = None


class TagRef(_Model):
    id: str
    value: str
    name: str = ""


class StackRef(_Model):
    id: str
    primaryAssetId: str


class PersonRef(_Model):
    id: str
    name: str = ""


Visibility = Literal["timeline", "archive", "hidden", "locked"]


class Asset(_Model):
    id: str
    ownerId: str
    libraryId: str | None = None
    type: Literal["IMAGE", "VIDEO", "AUDIO", "OTHER"]
    originalPath: str
    originalFileName: str
    originalMimeType: str | None = None
    fileCreatedAt: str
    fileModifiedAt: str
    createdAt: str | None = None
    isFavorite: bool = False
    isTrashed: bool = False
    isOffline: bool = False
    visibility: Visibility = "timeline"
    duration: int | str | None = None
    exifInfo: Exif | None = None
    livePhotoVideoId: str | None = None
    tags: list[TagRef] | None = None
    people: list[PersonRef] | None = None
    checksum: str
    stack: StackRef | None = None
    isEdited: bool = False
    width: int | None = None
    height: int | None = None
    updatedAt: str | None = None  # moved by every update of the asset's row (its asset_updatedAt trigger)

    @property
    def is_external(self) -> bool:
        return self.libraryId is not None

    @property
    def size(self) -> int | None:
        return self.exifInfo.fileSizeInByte if self.exifInfo else None


class AlbumUser(_Model):
    role: str
    userId: str


class Album(_Model):
    id: str
    albumName: str = ""
    albumThumbnailAssetId: str | None = None
    shared: bool = False
    isActivityEnabled: bool = False
    ownerId: str | None = None
    users: list[AlbumUser] = Field(default_factory=list)
    updatedAt: str | None = None  # moved by adding assets (not by removing them, nor by the copy endpoint)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Album:
        users = [
            {"role": u.get("role", ""), "userId": (u.get("user") or {}).get("id", "")}
            for u in data.get("albumUsers") or []
        ]
        owner = next((u["userId"] for u in users if u["role"] == "owner"), None)
        return cls.model_validate({**data, "users": users, "ownerId": data.get("ownerId") or owner})


class Face(_Model):
    id: str
    boundingBoxX1: int
    boundingBoxY1: int
    boundingBoxX2: int
    boundingBoxY2: int
    imageWidth: int
    imageHeight: int
    person: PersonRef | None = None
    sourceType: str | None = None


class Edit(_Model):
    action: str
    parameters: dict[str, Any]


class MetadataItem(_Model):
    key: str
    value: dict[str, Any]
    assetId: str | None = None  # present in the bulk endpoint's answer


class StackMember(_Model):
    id: str


class Stack(_Model):
    id: str
    primaryAssetId: str
    assets: list[StackMember] = Field(default_factory=list)

    @property
    def member_ids(self) -> frozenset[str]:
        return frozenset(a.id for a in self.assets)


class SharedLink(_Model):
    id: str
    type: str
    assets: list[StackMember] = Field(default_factory=list)


class Memory(_Model):
    id: str
    assets: list[StackMember] = Field(default_factory=list)


class UploadResult(_Model):
    id: str
    status: Literal["created", "duplicate", "replaced"]


class SearchPage(_Model):
    items: list[Asset]
    nextPage: str | None = None

    @field_validator("nextPage", mode="before")
    @classmethod
    def _page(cls, value: object) -> str | None:
        return None if value is None else str(value)


class QueueBacklog(_Model):
    """Jobs waiting or running, per queue name."""

    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any, call: str) -> M:
    """An answer as `model`; an answer of another shape is an UnexpectedResponse naming the call."""
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

"""The Immich client: one method per endpoint the job uses (see `endpoints.py` for each endpoint's
facts). Callers never build URLs or parse raw JSON. Split by API area: this module holds the server,
the user, libraries, searching and queues; `assets.py` the assets and their bytes; `curation.py`
albums, tags, stacks, faces, people and shared links.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from job.immich import errors
from job.immich.assets import AssetCalls
from job.immich.curation import CurationCalls
from job.immich.endpoints import ENDPOINTS as E
from job.immich.http import Transport
from job.immich.models import (
    Asset, Library, QueueBacklog, SearchPage, ServerConfig, ServerFeatures, ServerVersion, User, parse, parse_list,
)

MIN_VERSION = (2, 0, 0)
FILTER_TREE = (3, 2, 0)  # POST /search/metadata takes `filter`; the flat fields are deprecated from here
# where a listing page of assets in no album, untagged, unstacked, with people, was shown to carry every
# field of `GET /assets/{id}` the job reads (tests/e2e/test_contract.py, on 3.1.0)
LISTED_RECORD = ((3, 1, 0), FILTER_TREE)
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
    trash: bool  # the server keeps trashed assets for some days (else: purged at the nightly check)
    listed_record: bool = False  # a listing page can stand for the asset's own read (LISTED_RECORD)

    @classmethod
    def of(cls, version: ServerVersion, features: ServerFeatures) -> Capabilities:
        v = version.tuple
        return cls(version=version, copy=v >= E["copy"].since, edits=v >= E["edits"].since,
                   bulk_metadata=v >= E["metadata_bulk"].since, facial_recognition=features.facialRecognition,
                   trash=features.trash, listed_record=LISTED_RECORD[0] <= v < LISTED_RECORD[1])


# flat search field -> (filter tree field, comparison), for servers with the filter tree (3.2+)
_TREE = {"libraryId": ("libraryId", "eq"), "originalPath": ("originalPath", "eq"), "checksum": ("checksum", "eq"),
         "id": ("id", "eq"), "albumIds": ("albumIds", "any"), "isMotion": ("isMotion", "eq"),
         "pathStartsWith": ("originalPath", "startsWith"), "originalFileName": ("originalFileName", "eq"),
         "trashedAfter": ("trashedAt", "gte"), "trashedBefore": ("trashedAt", "lte"),
         "updatedAfter": ("updatedAt", "gte"), "takenAfter": ("takenAt", "gte"),
         "takenBefore": ("takenAt", "lte"), "hasAlbums": ("hasAlbums", "eq"), "hasTags": ("hasTags", "eq")}
_FLAT = {"pathStartsWith": "originalPath"}  # older servers: the flat substring match, a wider net
# older servers: a flat field that says the same with another value (`tagIds: null`: no tag_asset row)
_FLAT_VALUE = {"hasAlbums": {False: ("isNotInAlbum", True)}, "hasTags": {False: ("tagIds", None)}}


def search_body(version: tuple[int, int, int], *, page: int, size: int, with_exif: bool, with_deleted: bool,
                filters: dict[str, Any], with_people: bool = False, unstacked: bool = False) -> dict[str, Any]:
    """POST /search/metadata's body. From 3.2 the filters go in the `filter` tree; older servers only
    know the flat fields (3.1 silently drops `filter`, which would list everything: never send it there).
    Flat `originalPath` is a substring match, the tree's `eq` an exact one: callers compare exactly.
    `with_people`: each asset's people, as `GET /assets/{id}` shows them; `unstacked`: only assets in no
    stack (`withStacked: false`, 3.1.0: `asset.stackId is null`)."""
    body: dict[str, Any] = {"page": page, "size": size, "withExif": with_exif, "withDeleted": with_deleted}
    if with_people:
        body["withPeople"] = True
    if unstacked:
        body["withStacked"] = False
    wanted = {k: v for k, v in filters.items() if v is not None}
    unknown = set(wanted) - set(_TREE)
    if unknown:
        raise ValueError(f"search filters not described: {sorted(unknown)}")
    if version >= FILTER_TREE:
        tree: dict[str, dict[str, Any]] = {}
        for k, v in wanted.items():  # two comparisons of one field (a time window) share its entry
            tree.setdefault(_TREE[k][0], {})[_TREE[k][1]] = v
        if tree:
            body["filter"] = tree
    else:
        for k, v in wanted.items():
            if k in _FLAT_VALUE:
                if v not in _FLAT_VALUE[k]:
                    raise ValueError(f"search filter {k}={v!r} has no flat form before 3.2")
                body.update([_FLAT_VALUE[k][v]])
            else:
                body[_FLAT.get(k, k)] = v
    return body


class ImmichClient(AssetCalls, CurationCalls):
    def __init__(self, transport: Transport):
        self.t = transport
        self.version: tuple[int, int, int] = MIN_VERSION  # until server_version() has been asked

    @property
    def read_only(self) -> bool:
        return self.t.read_only

    def close(self) -> None:
        self.t.close()

    # --- server, user, key, libraries ---------------------------------------------------------

    def server_version(self) -> ServerVersion:
        data = self.t.json(E["server_version"])
        if not isinstance(data, dict) or "major" not in data:
            raise errors.NotImmich(E["server_version"].call, "did not answer like an Immich server")
        version = parse(ServerVersion, data, E["server_version"].call)
        self.version = version.tuple
        return version

    def server_features(self) -> ServerFeatures:
        return parse(ServerFeatures, self.t.json(E["server_features"]), E["server_features"].call)

    def trash_days(self) -> int:
        """After how many days Immich deletes trashed assets for good (with their files)."""
        return parse(ServerConfig, self.t.json(E["server_config"]), E["server_config"].call).trashDays

    def me(self) -> User:
        return parse(User, self.t.json(E["me"]), E["me"].call)

    def key_permissions(self) -> set[str] | None:
        """The API key's permissions (GET /api-keys/me); None when the server cannot say."""
        try:
            data = self.t.json(E["key_me"])
        except (errors.NotFound, errors.Forbidden, errors.BadRequest):
            return None
        return set(data.get("permissions", [])) if isinstance(data, dict) else set()

    def user_names(self) -> dict[str, str]:
        """Every user's name by id (admin only)."""
        return {u.id: u.name or u.email for u in parse_list(User, self.t.json(E["users"]), E["users"].call)}

    def libraries(self) -> list[Library]:
        return parse_list(Library, self.t.json(E["libraries"]), E["libraries"].call)

    def library(self, library_id: str) -> Library:
        return parse(Library, self.t.json(E["library"], library_id), E["library"].call)

    # --- searching ------------------------------------------------------------------------------

    def search_assets(self, *, page: int = 1, size: int = 1000, with_exif: bool = True, with_deleted: bool = False,
                      with_people: bool = False, unstacked: bool = False, **filters: Any) -> SearchPage:
        """POST /search/metadata. Without `visibility` Immich returns timeline, archive and hidden (live
        video halves) but never locked; without `with_deleted` no trashed assets. Only the key's own
        user's assets, whatever the filters say. An item carries no tags and no stack (and no people
        without `with_people`)."""
        body = search_body(self.version, page=page, size=size, with_exif=with_exif, with_deleted=with_deleted,
                           filters=filters, with_people=with_people, unstacked=unstacked)
        data = self.t.json(E["search"], json_body=body)
        if not isinstance(data, dict) or not isinstance(data.get("assets"), dict):
            raise errors.UnexpectedResponse(E["search"].call, "answer has a shape we do not know (no 'assets')")
        return parse(SearchPage, data["assets"], E["search"].call)

    def iter_assets(self, *, size: int = 1000, **filters: Any) -> Iterator[Asset]:
        page: int | None = 1
        while page is not None:
            result = self.search_assets(page=page, size=size, **filters)
            yield from result.items
            page = int(result.nextPage) if result.nextPage else None

    def assets_at(self, path: str, *, library_id: str | None = None) -> list[Asset]:
        """The user's live assets whose file is exactly `path` (any library, internal ones too)."""
        return [a for a in self.iter_assets(size=1000, with_exif=False, originalPath=path, libraryId=library_id)
                if a.originalPath == path]

    def assets_with_stem(self, stem: str) -> list[Asset]:
        """The user's live assets whose path starts with `stem`, compared without case (Immich's ILIKE):
        the files that may share a sidecar with `stem`'s file (`paths.share_sidecar` tells which do)."""
        wanted = stem.casefold()
        return [a for a in self.iter_assets(size=1000, with_exif=False, pathStartsWith=stem)
                if a.originalPath.casefold().startswith(wanted)]

    def count_assets(self, library_id: str) -> int:
        data = self.t.json(E["statistics"], json_body={"libraryId": library_id})
        if not isinstance(data, dict) or not isinstance(data.get("total"), int):
            raise errors.UnexpectedResponse(E["statistics"].call, "answer has a shape we do not know")
        return data["total"]

    def queue_backlog(self) -> QueueBacklog:
        """Jobs waiting or active in Immich's heavy queues. GET /queues (3.x), else GET /jobs (2.x)."""
        if self.version >= E["queues"].since:
            data = self.t.json(E["queues"])
            if isinstance(data, list):
                return QueueBacklog(counts={
                    q["name"]: int(q["statistics"].get("active", 0)) + int(q["statistics"].get("waiting", 0))
                    for q in data if isinstance(q, dict) and q.get("name") in HEAVY_QUEUES})
        data = self.t.json(E["jobs"])
        if not isinstance(data, dict):
            raise errors.UnexpectedResponse(E["jobs"].call, "answer has a shape we do not know")
        return QueueBacklog(counts={
            name: int(q.get("jobCounts", {}).get("active", 0)) + int(q.get("jobCounts", {}).get("waiting", 0))
            for name, q in data.items() if name in HEAVY_QUEUES and isinstance(q, dict)})

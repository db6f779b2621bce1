"""The fake Immich's world and its rules, without HTTP. Each rule cites where it comes from: Immich's
server source (3.1.0), ../shared/immich/API.md, or an observation on a real Immich 3.1.0.

Simplifications (deliberate, and harmless to what the job relies on): background jobs run at once
unless a delay is configured; face coordinates are stored as given (the real server maps them through
edits both when reading and when creating, which cancels out for the job); one disk for all users
(which is how a shared folder looks to Immich: several libraries, of several users, over one file).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import os
import posixpath
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tests.fake_immich.blobs import Blob


class ApiError(Exception):
    """An HTTP error answer, with Immich's body shape."""

    def __init__(self, status: int, message: str, errors: list[dict] | None = None):
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        if self.status == 404:
            body.update({"error": "Not Found", "statusCode": 404})
        return body


def not_found_asset() -> ApiError:
    # a real Immich answers 400, not 404, for an asset that does not exist or is not yours
    return ApiError(400, "Not found or no asset.read access")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def exif_time(value: str | None) -> str | None:
    """'2019-05-01T09:00:00.000Z' -> '2019-05-01T09:00:00+00:00' (how exifInfo spells dates)."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}".rstrip("0")
    return text + "+00:00"


def new_id() -> str:
    return str(uuid.uuid4())


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


@dataclass
class Embedded:
    """What a file itself says (EXIF/XMP inside), as Immich's metadata extraction would read it."""

    taken: str | None = None  # ISO instant, UTC
    time_zone: str | None = None
    gps: tuple[float, float] | None = None
    description: str = ""
    rating: int | None = None
    tags: list[str] = field(default_factory=list)
    width: int | None = 640
    height: int | None = 480
    make: str | None = None
    faces: list[tuple[int, int, int, int]] = field(default_factory=list)  # what face detection would find
    content_id: str | None = None  # Apple's ContentIdentifier: live-photo halves share one


_UUID_TEXT = re.compile(rb"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")


def content_id_in(data: bytes) -> str | None:
    """Apple's ContentIdentifier as exiftool reads it from a real file: tag 0x0011 of the Apple
    MakerNote of a JPEG ('Apple iOS' header), or the QuickTime key
    com.apple.quicktime.content.identifier of a MOV/MP4 (the value follows the key)."""
    for marker in (b"Apple iOS\x00", b"com.apple.quicktime.content.identifier"):
        index = data.find(marker)
        if index >= 0:
            found = _UUID_TEXT.search(data, index, index + 4096)
            if found:
                return found.group(0).decode()
    return None


@dataclass(eq=False)
class User:
    id: str
    email: str
    name: str
    is_admin: bool = False


@dataclass
class Key:
    secret: str
    id: str
    user_id: str
    permissions: list[str]


@dataclass
class Library:
    id: str
    owner_id: str
    name: str
    import_paths: list[str]
    read_only: bool = False  # Immich cannot delete files there (a read-only mount)
    created_at: float = field(default_factory=time.time)
    # library.service.ts create(): the exclusion patterns a new library gets
    exclusion_patterns: list[str] = field(default_factory=lambda: [
        "**/@eaDir/**", "**/._*", "**/#recycle/**", "**/#snapshot/**", "**/.stversions/**", "**/.stfolder/**"])


@dataclass
class Asset:
    id: str
    owner_id: str
    library_id: str | None
    type: str
    original_path: str
    original_file_name: str
    mime: str
    blob: Blob
    checksum: bytes
    file_created_at: str
    file_modified_at: str
    created_at: float
    is_favorite: bool = False
    visibility: str = "timeline"
    deleted_at: float | None = None
    is_offline: bool = False
    duration: int | None = None
    exif: dict[str, Any] = field(default_factory=dict)
    live_photo_video_id: str | None = None
    tag_ids: list[str] = field(default_factory=list)
    stack_id: str | None = None
    metadata: dict[str, tuple[dict, float]] = field(default_factory=dict)
    edits: list[dict[str, Any]] = field(default_factory=list)
    sidecar: dict[str, Any] | None = None  # the values of its sidecar (an external asset's: its file's, shared)
    sidecar_path: str | None = None  # an external asset's recorded sidecar file (asset_file), as crawled
    width: int | None = None
    height: int | None = None
    extracted_at: float = 0.0
    updated_at: float = field(default_factory=time.time)
    content_id: str | None = None

    @property
    def internal(self) -> bool:
        return self.library_id is None


@dataclass
class Album:
    id: str
    owner_id: str
    name: str
    users: dict[str, str]  # user id -> role
    asset_ids: list[str] = field(default_factory=list)
    thumbnail_asset_id: str | None = None
    activity_enabled: bool = True
    created_at: float = field(default_factory=time.time)
    # album.service addAssets / addAssetsToAlbums set it; removing assets and the copy endpoint's
    # copyAlbums (a plain insert into album_asset) do not (real 3.1.0, tests/e2e/test_contract.py)
    updated_at: float = field(default_factory=time.time)


@dataclass
class Tag:
    id: str
    owner_id: str
    value: str
    parent_id: str | None
    created_at: float = field(default_factory=time.time)

    @property
    def name(self) -> str:
        return self.value.rsplit("/", 1)[-1]


@dataclass
class Stack:
    id: str
    owner_id: str
    primary_asset_id: str


@dataclass
class Person:
    id: str
    owner_id: str
    name: str
    feature_face_id: str | None = None


@dataclass
class Face:
    id: str
    asset_id: str
    person_id: str | None
    box: tuple[int, int, int, int]
    image_width: int
    image_height: int
    source_type: str = "manual"


@dataclass
class SharedLink:
    id: str
    owner_id: str
    type: str  # INDIVIDUAL or ALBUM
    asset_ids: list[str] = field(default_factory=list)
    album_id: str | None = None


@dataclass
class Memory:
    id: str
    owner_id: str
    asset_ids: list[str]


@dataclass
class Activity:
    id: str
    album_id: str
    asset_id: str | None
    user_id: str
    kind: str  # comment or like


VERSION_FEATURES = {
    # what appeared when (API.md "Versions"); the fake answers 404 for routes its version lacks
    "copy": (2, 2, 0),
    "edits": (2, 5, 0),
    "bulk_metadata": (2, 5, 0),
    "queues": (3, 0, 0),
    "filter_tree": (3, 2, 0),  # POST /search/metadata's `filter` (older servers drop it silently)
}


class World:
    """Everything the fake server knows. All access goes through `lock`."""

    def __init__(self, version: tuple[int, int, int] = (3, 1, 0)):
        self.lock = threading.RLock()
        self.version = version
        self.features = {"facialRecognition": False, "trash": True, "sidecar": True, "ocr": False, "smartSearch": False}
        self.users: dict[str, User] = {}
        self.keys: dict[str, Key] = {}
        self.libraries: dict[str, Library] = {}
        self.assets: dict[str, Asset] = {}
        self.albums: dict[str, Album] = {}
        self.tags: dict[str, Tag] = {}
        self.stacks: dict[str, Stack] = {}
        self.people: dict[str, Person] = {}
        self.faces: dict[str, Face] = {}
        self.links: dict[str, SharedLink] = {}
        self.memories: dict[str, Memory] = {}
        self.activities: dict[str, Activity] = {}
        self.disk: dict[str, Blob] = {}  # absolute path -> content
        self.disk_mtime: dict[str, str] = {}
        self.disk_sidecars: dict[str, dict[str, Any]] = {}  # real path of an XMP file -> its values
        self.folder_links: dict[str, str] = {}  # a folder reached under another name (symlink, second mount) -> the real folder
        self.removed_files: list[tuple[str, Blob, str]] = []  # (path, content, owner of the asset whose deletion removed it)
        self.real_files: set[str] = set()  # files a scan read from the real file system (the contract test's)
        self.trash_days = 30
        self.at_delete = None  # a test's seam: called with the assets of a DELETE /assets before it applies
        self.embedded: dict[bytes, Embedded] = {}  # sha1 -> what the file says
        self.queue_backlog: Any = None  # int, or a callable returning {queue: jobs}
        self.extraction_delay = 0.0
        # Immich restarts in the middle of this many next uploads (asset-media.service.ts uploadAsset: the
        # asset row is created, then its key/values are stored, then its metadata job is queued): the row
        # stays, its key/values and metadata job are lost, and the answer never comes
        self.restarts_in_upload = 0
        # The copy endpoint queues a metadata extraction (asset.service.ts copySidecar): it lands after the
        # asset has been read this many more times (0: at once), like a job behind others in the queue
        self.sidecar_extraction_after_reads = 0
        self.queued_extractions: dict[str, int] = {}
        self.detection_delay = 0.0
        self.keep_uploads_up_to = 32 * 1024 * 1024  # larger uploads keep only their hash and size
        self.latency = 0.0  # seconds each answer takes, like a server on a network (benchmarks)
        self.costs: Any = None  # benchmarks: Immich's own work per call and queued, on a few cores (costs.Costs)
        # Benchmarks whose world changes only through requests: searches are answered from a cache
        # that every mutating request clears. Off for tests, which also change the world directly.
        self.cache_searches = False
        self.search_cache: dict[tuple[str, str], list[Any]] = {}
        self.created_assets: list[str] = []  # ids of assets created by uploads, in order

    def has(self, feature: str) -> bool:
        return self.version >= VERSION_FEATURES[feature]

    # --- people and keys ---------------------------------------------------------------------

    def add_user(self, email: str, *, admin: bool = False, name: str = "") -> User:
        user = User(new_id(), email, name or email.split("@")[0].title(), admin)
        self.users[user.id] = user
        return user

    def add_key(self, user: User, permissions: list[str] | None = None, secret: str | None = None) -> str:
        secret = secret or base64.urlsafe_b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes).decode().rstrip("=")
        self.keys[secret] = Key(secret, new_id(), user.id, permissions or ["all"])
        return secret

    # --- disk, libraries, scans --------------------------------------------------------------

    def put_file(self, path: str, blob: Blob, *, embedded: Embedded | None = None, mtime: str | None = None,
                 sidecar: dict[str, Any] | None = None) -> None:
        """A file on disk; `sidecar`: the values of its own sidecar `<path>.xmp` beside it."""
        path = self.real(path)
        self.disk[path] = blob
        self.disk_mtime[path] = mtime or iso(time.time())
        if embedded is not None:
            self.embedded[blob.sha1] = embedded
        if sidecar is not None:
            self.disk_sidecars[f"{path}.xmp"] = sidecar

    def put_sidecar(self, path: str, values: dict[str, Any]) -> None:
        """An XMP file on disk at `path` (`IMG_1.xmp`, which a RAW+JPEG pair shares)."""
        self.disk_sidecars[self.real(path)] = values

    def link(self, alias: str, folder: str) -> None:
        """`alias` is another name of `folder` (a symbolic link, or the same share mounted twice)."""
        self.folder_links[alias.rstrip("/")] = folder.rstrip("/")

    def real(self, path: str) -> str:
        """The file a path names, through the links."""
        for alias, folder in self.folder_links.items():
            if path == alias or path.startswith(alias + "/"):
                return self.real(folder + path[len(alias):])
        return path

    def on_disk(self, path: str) -> Blob | None:
        return self.disk.get(self.real(path))

    def etag(self, path: str) -> str:
        """Express's sendFile ETag of the file as it is now: W/"<size hex>-<mtime ms hex>" (seen on 3.1.0)."""
        path = self.real(path)
        blob = self.disk[path]
        mtime = int(datetime.fromisoformat(self.disk_mtime[path].replace("Z", "+00:00")).timestamp() * 1000)
        return f'W/"{blob.size:x}-{mtime:x}"'

    def rewrite_file(self, path: str, blob: Blob, mtime: str) -> None:
        """The file changes on disk; Immich notices only at its next library scan (API.md)."""
        self.put_file(path, blob, mtime=mtime)

    def add_library(self, owner: User, name: str, import_paths: list[str], *, read_only: bool = False,
                    exclusion_patterns: list[str] | None = None) -> Library:
        library = Library(new_id(), owner.id, name, import_paths, read_only)
        if exclusion_patterns is not None:
            library.exclusion_patterns = exclusion_patterns
        self.libraries[library.id] = library
        return library

    def scan(self, library: Library) -> list[Asset]:
        """Import new files, mark vanished ones offline and trash them (API.md "Deleting"). Files on the
        real file system under the import paths are read in too (the contract tests write real files)."""
        for root in library.import_paths:
            if os.path.isdir(root) and os.path.realpath(root) != root.rstrip("/"):
                self.link(root, os.path.realpath(root))  # a symbolic link: one folder under two names
            for folder, _, names in os.walk(root):
                for name in names:
                    path = os.path.realpath(os.path.join(folder, name))
                    if name.endswith(".xmp"):
                        if path not in self.disk_sidecars:
                            with open(path, encoding="utf-8", errors="replace") as handle:
                                self.disk_sidecars[path] = read_xmp(handle.read())
                            self.real_files.add(path)
                    elif path not in self.disk:
                        with open(path, "rb") as handle:
                            blob = Blob.of(handle.read())
                        cid = content_id_in(blob.read_all())
                        self.put_file(path, blob, mtime=iso(os.stat(path).st_mtime),
                                      embedded=Embedded(width=None, height=None, content_id=cid) if cid else None)
                        self.real_files.add(path)
        imported = []
        known = {a.original_path: a for a in self.assets.values() if a.library_id == library.id}
        for real in sorted(self.disk):
            for root in (p.rstrip("/") for p in library.import_paths):
                # the crawl names a file as it walked to it: through a link, under the link's name
                folder = self.real(root)
                if not real.startswith(folder + "/"):
                    continue
                path = root + real[len(folder):]
                if path in known or any(_glob(pattern).fullmatch(path) for pattern in library.exclusion_patterns):
                    continue
                known[path] = self._import(library, path)
                imported.append(known[path])
        for path, asset in known.items():
            if self.real(path) not in self.disk and not asset.is_offline:
                asset.is_offline = True
                asset.deleted_at = asset.deleted_at or time.time()
            elif self.real(path) in self.disk and self.disk_mtime[self.real(path)] != asset.file_modified_at:
                # library.service checkExistingAsset: a new mtime is an UPDATE, trashed assets too; the
                # metadata extraction it queues records the file's new date and size
                asset.file_modified_at = self.disk_mtime[self.real(path)]
                asset.blob = self.disk[self.real(path)]
        return imported

    def _import(self, library: Library, path: str) -> Asset:
        blob = self.disk[self.real(path)]
        name = path.rsplit("/", 1)[-1]
        kind = "VIDEO" if name.lower().endswith((".mp4", ".mov")) else "IMAGE"
        # current servers give external assets a checksum of the PATH, not of the bytes (API.md)
        checksum = hashlib.sha1(f"path:{path}".encode()).digest()
        asset = Asset(
            id=new_id(), owner_id=library.owner_id, library_id=library.id, type=kind, original_path=path,
            original_file_name=name, mime=_mime(name), blob=blob, checksum=checksum,
            file_created_at=self.disk_mtime[self.real(path)], file_modified_at=self.disk_mtime[self.real(path)],
            created_at=time.time(),
            duration=1000 if kind == "VIDEO" else None,
        )
        # metadata.service getSidecarCandidates: IMG_1.jpg.xmp, else IMG_1.xmp (names as crawled; the file
        # system is case-sensitive). Every asset that finds one file records it: they share it.
        for candidate in (f"{path}.xmp", f"{posixpath.splitext(path)[0]}.xmp"):
            if self.real(candidate) in self.disk_sidecars:
                asset.sidecar_path = candidate
                asset.sidecar = self.disk_sidecars[self.real(candidate)]
                break
        self.assets[asset.id] = asset
        self.extract(asset)
        return asset

    # --- metadata extraction (metadata.service.ts) ---------------------------------------------

    def extract(self, asset: Asset) -> None:
        """Read the file, then the XMP sidecar over it. Tags are REPLACED by what file+sidecar say
        (applyTagList -> replaceAssetTags). Rating -1 in a sidecar reads back as null (real 3.1.0)."""
        emb = self.embedded.get(asset.blob.sha1, Embedded(width=None, height=None))
        taken = emb.taken or asset.file_modified_at
        exif: dict[str, Any] = {
            "make": emb.make, "model": None, "exifImageWidth": emb.width, "exifImageHeight": emb.height,
            "fileSizeInByte": asset.blob.size, "orientation": None, "dateTimeOriginal": exif_time(taken),
            "modifyDate": exif_time(asset.file_modified_at), "timeZone": emb.time_zone, "lensModel": None,
            "fNumber": None, "focalLength": None, "iso": None, "exposureTime": None,
            "latitude": emb.gps[0] if emb.gps else None, "longitude": emb.gps[1] if emb.gps else None,
            "city": None, "state": None, "country": None, "description": emb.description,
            "projectionType": None, "rating": emb.rating,
        }
        tags = list(emb.tags)
        sidecar = self.sidecar_file(asset) or {}
        if "description" in sidecar:
            exif["description"] = sidecar["description"]
        if "dateTimeOriginal" in sidecar:
            exif["dateTimeOriginal"] = exif_time(sidecar["dateTimeOriginal"])
            exif["timeZone"] = sidecar.get("timeZone", exif["timeZone"])
        if "gps" in sidecar:
            exif["latitude"], exif["longitude"] = sidecar["gps"]
        if "rating" in sidecar:
            exif["rating"] = None if sidecar["rating"] in (-1, 0) else sidecar["rating"]
        if "tags" in sidecar:
            tags = list(sidecar["tags"])
        asset.content_id = emb.content_id  # asset_exif.livePhotoCID (not in the API's answers)
        asset.exif = exif
        asset.tag_ids = [self.upsert_tag(asset.owner_id, value).id for value in tags]
        asset.width, asset.height = emb.width, emb.height
        asset.extracted_at = time.time()
        if emb.content_id:
            self.link_live_photos(asset, emb.content_id)

    def link_live_photos(self, asset: Asset, content_id: str) -> None:
        """metadata.service linkLivePhotos: the first asset of the OTHER type with the same
        ContentIdentifier among ALL the owner's assets (findLivePhotoMatch ignores the library and the
        trash) becomes the other half; the video is hidden and leaves every album."""
        other_type = "IMAGE" if asset.type == "VIDEO" else "VIDEO"
        match = next((a for a in self.assets.values() if a.id != asset.id and a.owner_id == asset.owner_id
                      and a.type == other_type and a.content_id == content_id), None)
        if match is None:
            return
        photo, motion = (asset, match) if asset.type == "IMAGE" else (match, asset)
        photo.live_photo_video_id = motion.id
        motion.visibility = "hidden"
        for album in self.albums.values():
            if motion.id in album.asset_ids:
                album.asset_ids.remove(motion.id)

    def is_extracted(self, asset: Asset) -> bool:
        return time.time() >= asset.extracted_at

    def read_asset(self, asset: Asset) -> None:
        """An answer is about to show `asset`: a queued extraction that is due lands first."""
        left = self.queued_extractions.get(asset.id)
        if left is None:
            return
        if left <= 0:
            del self.queued_extractions[asset.id]
            self.extract(asset)
        else:
            self.queued_extractions[asset.id] = left - 1

    # --- tags -----------------------------------------------------------------------------------

    def upsert_tag(self, owner_id: str, value: str) -> Tag:
        parent = None
        built = ""
        tag = None
        for part in value.split("/"):
            built = f"{built}/{part}" if built else part
            tag = next((t for t in self.tags.values() if t.owner_id == owner_id and t.value == built), None)
            if tag is None:
                tag = Tag(new_id(), owner_id, built, parent.id if parent else None)
                self.tags[tag.id] = tag
            parent = tag
        assert tag is not None
        return tag

    # --- assets ---------------------------------------------------------------------------------

    def live_assets(self, owner_id: str | None = None) -> list[Asset]:
        return [a for a in self.assets.values() if owner_id is None or a.owner_id == owner_id]

    def find_upload_duplicate(self, owner_id: str, sha1: bytes) -> Asset | None:
        """asset.repository getUploadAssetIdByChecksum: same owner, same checksum, INTERNAL only;
        trashed ones count (deletedAt is not looked at)."""
        for asset in self.assets.values():
            if asset.owner_id == owner_id and asset.internal and asset.checksum == sha1:
                return asset
        return None

    def create_upload(self, owner: User, blob: Blob, fields: dict[str, str]) -> Asset:
        name = fields.get("filename") or "upload.bin"
        if blob.data is not None and blob.sha1 not in self.embedded and (cid := content_id_in(blob.data)):
            self.embedded[blob.sha1] = Embedded(width=None, height=None, content_id=cid)
        kind = "VIDEO" if name.lower().endswith((".mp4", ".mov")) else "IMAGE"
        asset = Asset(
            id=new_id(), owner_id=owner.id, library_id=None, type=kind,
            original_path=f"/data/upload/{owner.id}/{uuid.uuid4().hex[:2]}/{uuid.uuid4()}{_ext(name)}",
            original_file_name=name, mime=_mime(name), blob=blob, checksum=blob.sha1,
            file_created_at=_iso_field(fields["fileCreatedAt"]), file_modified_at=_iso_field(fields["fileModifiedAt"]),
            created_at=time.time(), is_favorite=fields.get("isFavorite") == "true",
            visibility=fields.get("visibility") or "timeline",
            duration=int(fields["duration"]) if fields.get("duration", "").isdigit() else None,
        )
        video_id = fields.get("livePhotoVideoId")
        if video_id:
            self.before_link(owner.id, video_id)
            asset.live_photo_video_id = video_id
        self.assets[asset.id] = asset
        self.created_assets.append(asset.id)
        self.extract(asset)
        asset.extracted_at = time.time() + self.extraction_delay
        return asset

    def before_link(self, owner_id: str, video_id: str) -> None:
        """asset.util onBeforeLink: the motion part must be the user's video; it becomes hidden."""
        video = self.assets.get(video_id)
        if video is None or video.owner_id != owner_id:
            raise ApiError(400, "Live photo video not found")
        if video.type != "VIDEO":
            raise ApiError(400, "Live photo video must be a video")
        video.visibility = "hidden"

    def write_fields(self, asset: Asset, values: dict[str, Any]) -> None:
        """PUT /assets and PUT /assets/{id}: DB values, then the sidecar write job puts the edited
        values into the asset's XMP sidecar (which the copy endpoint later copies)."""
        sidecar: dict[str, Any] = {}
        if any(k in values for k in ("description", "rating", "latitude", "dateTimeOriginal", "timeZone")):
            sidecar = self.sidecar_file(asset, create=True)
        if "isFavorite" in values:
            asset.is_favorite = bool(values["isFavorite"])
        if "visibility" in values:
            asset.visibility = values["visibility"]
            if values["visibility"] == "locked":
                for album in self.albums.values():
                    if asset.id in album.asset_ids:
                        album.asset_ids.remove(asset.id)
        if "description" in values:
            asset.exif["description"] = values["description"]
            sidecar["description"] = values["description"]
        if "rating" in values:
            rating = values["rating"]
            # written to the sidecar as -1, read back as null once re-extracted (real 3.1.0)
            asset.exif["rating"] = None if rating == -1 else rating
            sidecar["rating"] = rating
        if "latitude" in values:
            asset.exif["latitude"], asset.exif["longitude"] = values["latitude"], values["longitude"]
            sidecar["gps"] = (values["latitude"], values["longitude"])
        if "dateTimeOriginal" in values or "timeZone" in values:
            taken = values.get("dateTimeOriginal")
            zone = values.get("timeZone")
            if taken is not None:
                parsed = datetime.fromisoformat(taken.replace("Z", "+00:00"))
                if zone is None and parsed.utcoffset() is not None and taken[-1] != "Z":
                    minutes = int(parsed.utcoffset().total_seconds() // 60)
                    zone = f"UTC{'+' if minutes >= 0 else '-'}{abs(minutes) // 60}" if minutes else "UTC"
                asset.exif["dateTimeOriginal"] = exif_time(taken)
                sidecar["dateTimeOriginal"] = taken
            if zone is not None:
                asset.exif["timeZone"] = zone
                sidecar["timeZone"] = zone
        asset.updated_at = time.time()

    def tags_changed(self, asset: Asset) -> None:
        """tag.service updateTags: the tag list goes into the sidecar too (and, like every write to the
        asset's row or its tags, the asset's updatedAt moves)."""
        asset.updated_at = time.time()
        self.sidecar_file(asset, create=True)["tags"] = [self.tags[t].value for t in asset.tag_ids if t in self.tags]

    def sidecar_file(self, asset: Asset, *, create: bool = False) -> dict[str, Any] | None:
        """The sidecar values an asset reads (extraction) and writes (metadata.service handleSidecarWrite:
        its recorded file, else `<original>.xmp`, created when missing). An external asset's is a file on
        disk, one for every asset that recorded it; an internal asset's is its own."""
        if asset.internal or (asset.sidecar_path is None and not create):
            if asset.sidecar is None and create:
                asset.sidecar = {}
            return asset.sidecar
        if asset.sidecar_path is None:
            asset.sidecar_path = f"{asset.original_path}.xmp"
        real = self.real(asset.sidecar_path)
        if real not in self.disk_sidecars:
            if not create:
                return None
            self.disk_sidecars[real] = {}
        asset.sidecar = self.disk_sidecars[real]
        return asset.sidecar

    def drop_sidecar(self, asset: Asset) -> None:
        """The asset has no sidecar at all (Immich could not write one: a read-only library)."""
        if asset.sidecar_path is not None:
            self.disk_sidecars.pop(self.real(asset.sidecar_path), None)
        asset.sidecar, asset.sidecar_path = None, None

    def copy_asset(self, source: Asset, target: Asset, *, albums: bool, shared_links: bool, stack: bool,
                   favorite: bool, sidecar: bool) -> None:
        """asset.service.ts copy(): albums, shared links, stack, favourite, sidecar; nothing else."""
        if albums:
            for album in self.albums.values():
                if source.id in album.asset_ids and target.id not in album.asset_ids:
                    album.asset_ids.append(target.id)
        if shared_links:
            for link in self.links.values():
                if source.id in link.asset_ids and target.id not in link.asset_ids:
                    link.asset_ids.append(target.id)
        if stack and source.stack_id:
            if target.stack_id:
                # merge(source stack -> target stack), then delete(source stack). When both are already
                # the same stack this deletes it: a repeated copy dissolves the stack (real 3.1.0).
                old = source.stack_id
                for asset in self.assets.values():
                    if asset.stack_id == old:
                        asset.stack_id = target.stack_id
                self.delete_stack(old)
            else:
                target.stack_id = source.stack_id
        if favorite:
            target.is_favorite = source.is_favorite
        if sidecar and source.sidecar_path is not None and self.real(source.sidecar_path) not in self.disk_sidecars:
            # copySidecar copies the recorded file; when it is gone the call fails, after the steps above
            # (seen on 3.1.0: the other half of a RAW+JPEG pair took the shared sidecar with it)
            raise ApiError(500, "Failed to copy asset")
        values = self.sidecar_file(source) if sidecar else None
        if values is not None:
            target.sidecar = copy.deepcopy(values)
            # the copy queues metadata extraction from file + new sidecar
            if self.sidecar_extraction_after_reads:
                self.queued_extractions[target.id] = self.sidecar_extraction_after_reads
            else:
                self.extract(target)

    def delete_stack(self, stack_id: str) -> None:
        self.stacks.pop(stack_id, None)
        for asset in self.assets.values():
            if asset.stack_id == stack_id:
                asset.stack_id = None

    def stack_members(self, stack_id: str) -> list[Asset]:
        """stack.repository withAssets: not trashed, default visibility (timeline or archive)."""
        return [a for a in self.assets.values() if a.stack_id == stack_id and a.deleted_at is None
                and a.visibility in ("timeline", "archive")]

    def create_stack(self, owner_id: str, asset_ids: list[str]) -> Stack:
        """stack.repository create(): stacks whose PRIMARY is listed are merged in and deleted; the
        first id becomes the primary."""
        ids = list(dict.fromkeys(asset_ids))
        for old in [s for s in self.stacks.values() if s.owner_id == owner_id and s.primary_asset_id in ids]:
            for member in self.stack_members(old.id):
                if member.id not in ids:
                    ids.append(member.id)
            self.delete_stack(old.id)
        stack = Stack(new_id(), owner_id, ids[0])
        self.stacks[stack.id] = stack
        for asset_id in ids:
            self.assets[asset_id].stack_id = stack.id
            self.assets[asset_id].updated_at = time.time()
        return stack

    def trash(self, assets: list[Asset], *, force: bool) -> None:
        """asset.service deleteAll: deletedAt is set either way; `force` deletes for good at once. With the
        trash disabled a plain delete still only sets deletedAt: the nightly check purges it (API.md)."""
        now = time.time()
        for asset in assets:
            asset.deleted_at = asset.deleted_at or now
        if force:
            for asset in assets:
                self.final_delete(asset)

    def nightly_deletion_check(self) -> None:
        """asset.service handleAssetDeletionCheck: every asset trashed longer ago than the trash days (0
        when the trash is disabled) is deleted for good, its file too unless it is offline."""
        days = self.trash_days if self.features["trash"] else 0
        cutoff = time.time() - days * 86400
        for asset in [a for a in self.assets.values() if a.deleted_at is not None and a.deleted_at <= cutoff]:
            self.final_delete(asset)

    def empty_trash(self, owner_id: str) -> None:
        for asset in [a for a in self.assets.values() if a.owner_id == owner_id and a.deleted_at is not None]:
            if asset.id in self.assets:
                self.final_delete(asset)

    def final_delete(self, asset: Asset) -> None:
        """asset.service.ts handleAssetDeletion: stacks shrink (a single survivor dissolves the stack, a
        deleted primary is replaced), the row and its faces go, an unreferenced live video goes too,
        and the ORIGINAL FILE of an external asset is deleted when Immich may write there."""
        if asset.id not in self.assets:
            return
        if asset.stack_id and asset.stack_id in self.stacks:
            stack = self.stacks[asset.stack_id]
            remaining = [a for a in self.stack_members(stack.id) if a.id != asset.id]
            if len(remaining) < 2:
                self.delete_stack(stack.id)
            elif stack.primary_asset_id == asset.id:
                stack.primary_asset_id = remaining[0].id
        del self.assets[asset.id]
        for face in [f for f in self.faces.values() if f.asset_id == asset.id]:
            del self.faces[face.id]
            for person in self.people.values():
                if person.feature_face_id == face.id:
                    person.feature_face_id = None
        for album in self.albums.values():
            if asset.id in album.asset_ids:
                album.asset_ids.remove(asset.id)
        for link in self.links.values():
            if asset.id in link.asset_ids:
                link.asset_ids.remove(asset.id)
        for memory in self.memories.values():
            if asset.id in memory.asset_ids:
                memory.asset_ids.remove(asset.id)
        for activity in [a for a in self.activities.values() if a.asset_id == asset.id]:
            del self.activities[activity.id]
        if asset.live_photo_video_id and asset.live_photo_video_id in self.assets:
            if not any(a.live_photo_video_id == asset.live_photo_video_id for a in self.assets.values()):
                self.final_delete(self.assets[asset.live_photo_video_id])
        if not asset.internal and not asset.is_offline:
            # the FILE goes, whatever else (another library, another user) still points at it
            library = self.libraries.get(asset.library_id or "")
            real = self.real(asset.original_path)
            if library is not None and not library.read_only and real in self.disk:
                self.removed_files.append((real, self.disk.pop(real), asset.owner_id))
                if asset.sidecar_path is not None:  # its sidecar too, whoever else reads it
                    sidecar = self.real(asset.sidecar_path)
                    self.disk_sidecars.pop(sidecar, None)
                    if sidecar in self.real_files:
                        self.real_files.discard(sidecar)
                        os.remove(sidecar)
                if real in self.real_files:  # a real file the contract test wrote
                    self.real_files.discard(real)
                    os.remove(real)

    # --- albums ---------------------------------------------------------------------------------

    def update_thumbnails(self) -> None:
        """album.repository updateThumbnails (run by GET /albums): a missing cover of an album with
        assets, or a cover no longer in it, becomes the newest asset; only those rows are updated."""
        for album in self.albums.values():
            members = [self.assets[i] for i in album.asset_ids if i in self.assets and self.assets[i].deleted_at is None]
            if (album.thumbnail_asset_id is None and members) or \
                    (album.thumbnail_asset_id is not None and album.thumbnail_asset_id not in [m.id for m in members]):
                newest = max(members, key=lambda a: a.file_created_at, default=None)
                album.thumbnail_asset_id = newest.id if newest else None
                album.updated_at = time.time()  # an UPDATE of the album's row: its album_updatedAt trigger

    # --- faces ----------------------------------------------------------------------------------

    def detect_faces(self, asset: Asset) -> None:
        """Machine-learning face detection, when the server has it, once its delay has passed."""
        if not self.features["facialRecognition"] or not asset.internal:
            return
        if any(f.asset_id == asset.id and f.source_type == "machine-learning" for f in self.faces.values()):
            return
        if time.time() < asset.created_at + self.detection_delay:
            return
        emb = self.embedded.get(asset.blob.sha1)
        for box in emb.faces if emb else []:
            face = Face(new_id(), asset.id, None, box, asset.width or 640, asset.height or 480, "machine-learning")
            self.faces[face.id] = face


def _mime(name: str) -> str:
    lower = name.lower()
    for suffix, mime in ((".jpg", "image/jpeg"), (".jpeg", "image/jpeg"), (".png", "image/png"),
                         (".mp4", "video/mp4"), (".mov", "video/quicktime"), (".heic", "image/heic")):
        if lower.endswith(suffix):
            return mime
    return "application/octet-stream"


def _ext(name: str) -> str:
    return "." + name.rsplit(".", 1)[-1] if "." in name else ""


def _iso_field(value: str) -> str:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return iso(moment.timestamp())



def read_xmp(text: str) -> dict[str, Any]:
    """The values Immich reads from a real XMP file (description, rating, digiKam tags), as the fake keeps them."""
    import re

    values: dict[str, Any] = {}
    description = re.search(r"<dc:description>.*?<rdf:li[^>]*>(.*?)</rdf:li>", text, re.S)
    if description:
        values["description"] = description.group(1)
    rating = re.search(r'xmp:Rating="(-?\d+)"', text)
    if rating:
        values["rating"] = int(rating.group(1))
    tags = re.search(r"<digiKam:TagsList>(.*?)</digiKam:TagsList>", text, re.S)
    if tags:
        values["tags"] = re.findall(r"<rdf:li>(.*?)</rdf:li>", tags.group(1))
    return values


def _glob(pattern: str):
    """A picomatch-like glob for the fake's scan: `**` any folders, `*` and `?` within one name."""
    import re

    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:[^/]*/)*", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)

"""A faithful fake Immich (3.1.0 by default; older versions on request) for the tests.

    fake = FakeImmich().start()
    scene = Scene(fake)                       # an admin and a second user, each with an API key
    lib = scene.library("photos")
    p = scene.photo(lib, "a.jpg", taken="2019-05-01T09:00:00.000Z")
    scene.album("Trips", p); scene.favorite(p)
"""

from __future__ import annotations

import hashlib
import random
import time
from typing import Any

from tests.fake_immich.blobs import Blob
from tests.fake_immich.faults import Fault, FaultPlan
from tests.fake_immich.server import FakeImmich, Logged
from tests.fake_immich.state import (
    Activity, Album, Asset, Embedded, Face, Library, Memory, Person, SharedLink, User, World, iso, new_id,
)

__all__ = ["Blob", "Embedded", "FakeImmich", "Fault", "FaultPlan", "Logged", "Scene", "World"]


def content(seed: int, size: int = 4096) -> bytes:
    """Distinct, deterministic file bytes for a seed."""
    rng = random.Random(seed)
    return hashlib.sha1(str(seed).encode()).digest() + rng.randbytes(max(0, size - 20))


class Scene:
    """Builds a world the way a user of Immich would: files on disk, a scanned external library,
    curation. Every call works on the fake's own model (what the HTTP API would do)."""

    def __init__(self, fake: FakeImmich):
        self.fake = fake
        self.world: World = fake.world
        self.admin = self.world.add_user("admin@example.com", admin=True, name="Admin")
        self.key = self.world.add_key(self.admin)
        self.other = self.world.add_user("other@example.com", name="Other")
        self.other_key = self.world.add_key(self.other)
        self._seed = 1000

    def next_seed(self) -> int:
        self._seed += 1
        return self._seed

    # --- files and libraries -------------------------------------------------------------------

    def library(self, name: str = "photos", owner: User | None = None, *, read_only: bool = False,
                paths: list[str] | None = None, exclude: list[str] | None = None) -> Library:
        """An external library over `paths` (default /mnt/<name>): several libraries, of one user or of
        several, can be over the same folder, as a family's shared folder is."""
        return self.world.add_library(owner or self.admin, name, paths or [f"/mnt/{name}"], read_only=read_only,
                                      exclusion_patterns=exclude)

    def scan(self, library: Library) -> list[Asset]:
        with self.world.lock:
            return self.world.scan(library)

    def at(self, library: Library, path: str) -> Asset:
        """The library's asset of the file at `path`."""
        with self.world.lock:
            return next(a for a in self.world.assets.values() if a.library_id == library.id and a.original_path == path)

    def _file(self, library: Library, name: str, blob: Blob, embedded: Embedded | None, mtime: str | None,
              sidecar: dict | None = None) -> Asset:
        path = name if name.startswith("/") else f"{library.import_paths[0]}/{name}"
        with self.world.lock:
            self.world.put_file(path, blob, embedded=embedded, mtime=mtime, sidecar=sidecar)
            imported = self.world.scan(library)
        return next(a for a in imported if a.original_path == path)

    def sidecar(self, library: Library, name: str, **values: Any) -> str:
        """An XMP file in the library's folder (before its photos are scanned, they find it): `IMG_1.xmp`,
        which a camera's RAW+JPEG pair shares, holds what Lightroom or darktable wrote."""
        path = name if name.startswith("/") else f"{library.import_paths[0]}/{name}"
        with self.world.lock:
            self.world.put_sidecar(path, dict(values))
        return path

    def photo(self, library: Library, name: str, *, seed: int | None = None, size: int = 4096, data: bytes | None = None,
              taken: str | None = "2019-05-01T09:00:00.000Z", tz: str | None = "Europe/Dublin",
              gps: tuple[float, float] | None = None, description: str = "", rating: int | None = None,
              tags: list[str] | None = None, faces: list[tuple[int, int, int, int]] | None = None,
              mtime: str | None = None, synthetic: bool = False, sidecar: dict | None = None,
              content_id: str | None = None) -> Asset:
        seed = seed if seed is not None else self.next_seed()
        blob = Blob.synthetic(seed, size) if synthetic else Blob.of(data if data is not None else content(seed, size))
        embedded = Embedded(taken=taken, time_zone=tz if taken else None, gps=gps, description=description,
                            rating=rating, tags=list(tags or []), faces=list(faces or []), make="ScenarioCam",
                            content_id=content_id)
        return self._file(library, name, blob, embedded, mtime or "2026-11-25T00:36:23.006Z", sidecar)

    def video(self, library: Library, name: str, *, seed: int | None = None, size: int = 8192, synthetic: bool = False,
              taken: str = "2020-07-04T12:00:00.000Z", content_id: str | None = None) -> Asset:
        seed = seed if seed is not None else self.next_seed()
        blob = Blob.synthetic(seed, size) if synthetic else Blob.of(content(seed, size))
        return self._file(library, name, blob, Embedded(taken=taken, time_zone="UTC", width=320, height=240,
                                                        content_id=content_id), "2026-11-25T00:36:23.239Z")

    def live(self, library: Library, name: str) -> tuple[Asset, Asset]:
        """A live photo: a still and its video half, linked as Immich links them."""
        still = self.photo(library, f"{name}.jpg")
        motion = self.video(library, f"{name}.mov")
        with self.world.lock:
            self.world.before_link(still.owner_id, motion.id)
            still.live_photo_video_id = motion.id
        return still, motion

    def internal(self, data: bytes, name: str = "twin.jpg", *, owner: User | None = None, trashed: bool = False,
                 content_id: str | None = None, **curation: Any) -> Asset:
        """An asset already in the internal library (a phone backup of the same file). With `content_id`,
        it is one half of a live photo the phone took: Immich links it with the other half, wherever."""
        owner = owner or self.admin
        with self.world.lock:
            blob = Blob.of(data)
            if content_id is not None:
                video = name.lower().endswith((".mov", ".mp4"))
                self.world.embedded[blob.sha1] = Embedded(taken="2021-06-01T10:00:00.000Z", time_zone="UTC",
                                                          content_id=content_id, width=320 if video else 640,
                                                          height=240 if video else 480)
            asset = self.world.create_upload(owner, blob, {
                "filename": name, "fileCreatedAt": "2019-05-01T09:00:00.000Z", "fileModifiedAt": "2019-01-01T00:00:00.000Z"})
            self.world.created_assets.remove(asset.id)
            asset.created_at -= 86400
            asset.extracted_at = 0
            if curation:
                self.world.write_fields(asset, curation)
            if trashed:
                asset.deleted_at = time.time()
        return asset

    # --- curation (what a user does in Immich) --------------------------------------------------

    def curated_photo(self, library: Library, name: str = "a.jpg") -> Asset:
        """A photo curated every simple way: favourite, description, rating, a place, a tag, an album it is
        the cover of, a key/value."""
        photo = self.photo(library, name, gps=(48.85, 2.29))
        self.favorite(photo)
        self.edit(photo, description="Eiffel", rating=3)
        self.tag(photo, "Trips/Paris")
        self.album("Paris", photo, cover=photo)
        self.kv(photo, "note", {"text": "keep me"})
        return photo

    def edit(self, asset: Asset, **fields: Any) -> Asset:
        with self.world.lock:
            self.world.write_fields(asset, fields)
        return asset

    def favorite(self, asset: Asset) -> Asset:
        return self.edit(asset, isFavorite=True)

    def archive(self, asset: Asset) -> Asset:
        return self.edit(asset, visibility="archive")

    def tag(self, asset: Asset, *values: str) -> Asset:
        with self.world.lock:
            for value in values:
                tag = self.world.upsert_tag(asset.owner_id, value)
                if tag.id not in asset.tag_ids:
                    asset.tag_ids.append(tag.id)
            self.world.tags_changed(asset)
        return asset

    def album(self, name: str, *assets: Asset, cover: Asset | None = None, owner: User | None = None,
              shared_with: dict[User, str] | None = None) -> Album:
        owner = owner or self.admin
        users = {owner.id: "owner"} | {u.id: role for u, role in (shared_with or {}).items()}
        album = Album(new_id(), owner.id, name, users, [a.id for a in assets])
        # as Immich makes an album with assets: the first is its cover (album.service.ts create)
        album.thumbnail_asset_id = cover.id if cover else (assets[0].id if assets else None)
        with self.world.lock:
            self.world.albums[album.id] = album
        return album

    def stack(self, *assets: Asset) -> str:
        with self.world.lock:
            return self.world.create_stack(assets[0].owner_id, [a.id for a in assets]).id

    def person(self, name: str, owner: User | None = None) -> Person:
        person = Person(new_id(), (owner or self.admin).id, name)
        with self.world.lock:
            self.world.people[person.id] = person
        return person

    def face(self, asset: Asset, person: Person, box: tuple[int, int, int, int] = (100, 80, 220, 220)) -> Face:
        face = Face(new_id(), asset.id, person.id, box, asset.width or 640, asset.height or 480, "manual")
        with self.world.lock:
            self.world.faces[face.id] = face
            if person.feature_face_id is None:
                person.feature_face_id = face.id
        return face

    def crop(self, asset: Asset, x: int = 10, y: int = 20, width: int = 300, height: int = 200) -> Asset:
        with self.world.lock:
            asset.edits = [{"id": new_id(), "action": "crop", "parameters": {"x": x, "y": y, "width": width, "height": height}}]
        return asset

    def kv(self, asset: Asset, key: str, value: dict[str, Any]) -> Asset:
        with self.world.lock:
            asset.metadata[key] = (value, time.time())
        return asset

    def link(self, *assets: Asset) -> SharedLink:
        link = SharedLink(new_id(), assets[0].owner_id, "INDIVIDUAL", [a.id for a in assets])
        with self.world.lock:
            self.world.links[link.id] = link
        return link

    def memory(self, *assets: Asset) -> Memory:
        memory = Memory(new_id(), assets[0].owner_id, [a.id for a in assets])
        with self.world.lock:
            self.world.memories[memory.id] = memory
        return memory

    def comment(self, album: Album, asset: Asset, user: User | None = None) -> Activity:
        activity = Activity(new_id(), album.id, asset.id, (user or self.admin).id, "comment")
        with self.world.lock:
            self.world.activities[activity.id] = activity
        return activity

    def trash(self, asset: Asset) -> Asset:
        with self.world.lock:
            asset.deleted_at = time.time()
        return asset

    def rewrite(self, path: str, data: bytes, mtime: str = "2026-11-25T12:00:00.000Z") -> None:
        """The file changes on disk (an editor saves it); Immich knows only at its next scan."""
        with self.world.lock:
            self.world.rewrite_file(path, Blob.of(data), mtime)

    def remove_file(self, asset: Asset) -> None:
        """The file vanished from disk; the next scan marks the asset offline."""
        with self.world.lock:
            self.world.disk.pop(self.world.real(asset.original_path), None)
            self.world.scan(self.world.libraries[asset.library_id])

    def env(self, key: str | None = None, **more: str) -> dict[str, str]:
        """The job's environment for this world."""
        return {"IMMICH_URL": self.fake.url, "IMMICH_API_KEY": key or self.key, "EXT2INT_SETTLE_TIMEOUT": "5",
                "EXT2INT_SETTLE_CONFIRM": "0.2", "EXT2INT_CLAIM_WAIT": "0.3",
                "EXT2INT_LOG_FORMAT": "json", "EXT2INT_PROGRESS": "off", **more}


def now_iso() -> str:
    return iso(time.time())

"""Listing what is left: the units of the selected libraries, in Immich's order, never one twice.

Listing never pages past what it has not re-listed: moved assets vanish from Immich's search, so after
the first candidates are used up a library is listed again from page 1, skipping ids already handled.
A library's assets in no album come first (Immich filters them: `isNotInAlbum`, from 3.2 `hasAlbums`),
each page after a read of the user's albums' marks: a unit listed so needs no read of its own albums
while no album has moved since (see `Unit.no_albums` and the mover); then the rest. Where Immich was shown
to list an asset as `GET /assets/{id}` shows it (`Capabilities.listed_record`), the assets in no album
that have no tag and no stack come first of all, in short pages with their people: such a page stands for
each asset's own read when its unit starts within seconds (`Unit.listed_at`, `context.WHOLE_FRESH`).
Live-photo video halves move with their still; a hidden video that no listed still points at is
handed over alone at the very end (its still may be in a library listed later), and decided then with
the `LiveIndex`: whose still is it?
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import NamedTuple

from job.clock import SYSTEM, Clock
from job.immich.client import ImmichClient
from job.immich.models import Asset, Library
from job.move.context import Unit

WHOLE_PAGE = 50  # a page whose records stand for the assets' own reads: used up within seconds (WHOLE_FRESH)


def page_size_for(batch: int) -> int:
    return max(100, min(1000, batch * 2))


class Phase(NamedTuple):
    """Which of a library's assets a pass lists: only those in no album (`no_albums`); and of those only
    the ones with no tag and no stack, with their people, so that each record is the asset's whole (`whole`)."""

    no_albums: bool
    whole: bool = False

    @classmethod
    def all(cls, whole: bool) -> tuple[Phase, ...]:
        return ((cls(True, True),) if whole else ()) + (cls(True), cls(False))


class Listing:
    def __init__(self, client: ImmichClient, libraries: list[Library], *, page_size: int,
                 listed: Callable[[Asset], None] | None = None, user: str = "", seen: set[str] | None = None,
                 marks: Callable[[], dict[str, str | None]] | None = None, whole: bool = False, clock: Clock = SYSTEM):
        """`user`: whose key lists (and moves) these libraries; `seen`: the ids a run has taken, shared by
        all its listings; `marks`: reads the user's albums' marks (AlbumMarks.read), before each page of
        assets in no album (`plan` passes none: it reads no album); `whole`: the server lists an asset as
        its own read shows it (`Capabilities.listed_record`)."""
        self.client, self.libraries, self.page_size, self.listed, self.user = client, libraries, page_size, listed, user
        self.marks, self.phases, self.clock = marks, Phase.all(whole), clock
        self.seen: set[str] = set() if seen is None else seen
        self._videos_of_stills: set[str] = set()
        self._hidden: dict[str, Asset] = {}

    def units(self) -> Iterator[Unit]:
        for library in self.libraries:
            yield from self._library(library.id)
        for video in self._hidden.values():  # video halves no listed still points at
            if video.id not in self._videos_of_stills and video.id not in self.seen:
                self.seen.add(video.id)
                yield Unit(video, user=self.user)

    def _library(self, library_id: str) -> Iterator[Unit]:
        """Units of one library, phase by phase (`Phase.all`). Each pass lists from page 1; a pass that
        yields nothing ends its phase."""
        for phase in self.phases:
            while True:
                yielded = False
                for asset, marks, listed_at in self._pass(library_id, phase):
                    if self.listed:
                        self.listed(asset)
                    if asset.livePhotoVideoId:
                        self._videos_of_stills.add(asset.livePhotoVideoId)
                    if asset.type == "VIDEO" and asset.visibility == "hidden":
                        self._hidden.setdefault(asset.id, asset)  # a live photo's video half: it moves with its still
                        continue
                    if asset.id in self.seen:
                        continue
                    self.seen.add(asset.id)
                    if asset.livePhotoVideoId:
                        self.seen.add(asset.livePhotoVideoId)
                    yielded = True
                    yield Unit(asset, asset.livePhotoVideoId, self.user, no_albums=marks, listed_at=listed_at)
                if not yielded:
                    break

    def _pass(self, library_id: str, phase: Phase) -> Iterator[tuple[Asset, dict[str, str | None] | None, float | None]]:
        """One pass over the library's pages of `phase`, each asset with the albums' marks read before its
        page (when it was listed in no album and marks are read) and, for a whole record, when the page
        was asked for (the run's monotonic clock)."""
        page: int | None = 1
        while page is not None:
            marks = self.marks() if phase.no_albums and self.marks is not None else None
            asked = self.clock.monotonic()
            # a run's page of whole records is used up within seconds; `plan` (no marks) moves nothing
            short = phase.whole and self.marks is not None
            result = self.client.search_assets(page=page, size=min(self.page_size, WHOLE_PAGE) if short else self.page_size,
                                               libraryId=library_id, with_exif=True, with_people=phase.whole,
                                               unstacked=phase.whole, hasAlbums=False if phase.no_albums else None,
                                               hasTags=False if phase.whole else None)
            for asset in result.items:
                yield asset, marks, asked if phase.whole else None
            page = int(result.nextPage) if result.nextPage else None


class Feed:
    """The units of a run: the units the delete gate asks for first (the other users' assets of a file
    that waits for them), then in turn one from each user's listing, so that no user waits for another's
    libraries to be done. A unit is handed out once."""

    def __init__(self, listings: list[Listing], seen: set[str]):
        self.listings, self.seen = listings, seen
        self._wanted: deque[Unit] = deque()
        self._lock = threading.Lock()

    def want(self, unit: Unit) -> None:
        with self._lock:
            if unit.asset.id not in self.seen:
                self.seen.add(unit.asset.id)
                if unit.video_id:
                    self.seen.add(unit.video_id)
                self._wanted.append(unit)

    def wanted(self) -> Unit | None:
        with self._lock:
            return self._wanted.popleft() if self._wanted else None

    def has_wanted(self) -> bool:
        with self._lock:
            return bool(self._wanted)

    def __iter__(self) -> Iterator[tuple[Unit, bool]]:
        """(unit, asked for by the gate)."""
        turns = [listing.units() for listing in self.listings]
        while turns:
            for turn in list(turns):
                unit = self.wanted()
                while unit is not None:
                    yield unit, True
                    unit = self.wanted()
                try:
                    with self._lock:
                        unit = next(turn)
                except StopIteration:
                    turns.remove(turn)
                    continue
                yield unit, False


class LiveIndex:
    """Which stills use a video as their motion part: every still of the user with one (trashed ones
    too), listed once per run when first needed. Immich links live photos by Apple's ContentIdentifier
    among ALL the user's assets, whatever their library, so a video's still may be anywhere."""

    def __init__(self, client: ImmichClient):
        self.client = client
        self._map: dict[str, list[Asset]] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, list[Asset]]:
        with self._lock:
            if self._map is None:
                found: dict[str, list[Asset]] = {}
                for still in self.client.iter_assets(size=1000, with_exif=False, with_deleted=True, isMotion=True):
                    if still.livePhotoVideoId:
                        found.setdefault(still.livePhotoVideoId, []).append(still)
                self._map = found
            return self._map

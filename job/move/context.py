"""What every move of a run shares, and the shapes a unit takes on its way through the steps."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from job.clock import SYSTEM, Clock
from job.decide import Scope
from job.facts import Facts
from job.immich.client import Capabilities, ImmichClient
from job.immich.models import Asset
from job.journal import Claim
from job.move.held import Held
from job.outcome import Outcome, Stage
from job.paths import media_root
from job.record import LIVE, SELF, Record
from job.settings import Settings


class StepFailed(Exception):
    def __init__(self, stage: Stage, message: str, differences: list[str] | None = None):
        super().__init__(message)
        self.stage = stage
        self.differences = differences or []


class Waiting(Exception):
    """The target is right so far but Immich has not caught up, or the source changed while it moved:
    a later run finishes the move."""


@dataclass
class RunContext:
    """What every move of a run shares."""

    client: ImmichClient
    caps: Capabilities
    settings: Settings
    scope: Scope
    run_id: str
    clock: Clock = SYSTEM
    shared_links: dict[str, frozenset[str]] = field(default_factory=dict)  # asset id -> individual link ids
    memories: dict[str, int] = field(default_factory=dict)  # asset id -> memories showing it
    hard_stop: threading.Event = field(default_factory=threading.Event)
    stack_lock: threading.Lock = field(default_factory=threading.Lock)
    on_bytes: Callable[[int], None] | None = None
    on_step: Callable[[str, float], None] | None = None
    io: ThreadPoolExecutor | None = None  # for requests of one move that do not depend on each other
    sources: Sources = field(default_factory=lambda: Sources())
    live_stills: Callable[[], dict[str, list[Asset]]] | None = None  # video id -> stills linking to it
    peers: dict[str, ImmichClient] = field(default_factory=dict)  # the run's other users' clients, by user id (reads)
    unreleased: list[tuple[Claim, list[str]]] = field(default_factory=list)  # claims of ended units Immich did not take back
    targets: TargetLocks = field(default_factory=lambda: TargetLocks())  # one unit at a time carries to a target
    held: Held = field(default_factory=Held)  # the run's live claims, renewed while their units are in flight
    album_marks: AlbumMarks = field(default_factory=lambda: AlbumMarks())  # the user's albums as last read

    def fan(self, *calls: Callable[[], Any]) -> list[Any]:
        """Run independent calls side by side (each is one request, or none): a move then waits for
        the slowest, not for the sum. The first failure is raised once all have ended."""
        if self.io is None or len(calls) <= 1:
            return [call() for call in calls]
        futures = [self.io.submit(call) for call in calls]
        results, failure = [], None
        for future in futures:
            try:
                results.append(future.result())
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                failure = failure or exc
                results.append(None)
        if failure is not None:
            raise failure
        return results

    def saw_internal(self, asset: Asset) -> None:
        """An internal asset's path shows where Immich keeps its own files: none of them is ever moved."""
        if self.scope.media_root is None and not asset.is_external:
            root = media_root(asset.originalPath, self.scope.user_id)
            if root:
                self.scope = replace(self.scope, media_root=root)

    def sleep(self, seconds: float) -> None:
        """A move keeps waiting for Immich after a first signal; only a second one cuts the wait."""
        self.clock.sleep(seconds, until=self.hard_stop)


class AlbumMarks:
    """One read of all the user's albums (`GET /albums`: every album they own or were shared, as
    `albums?assetId=` sees them) as a change marker: each album's `updatedAt`. Adding assets to an album
    moves it (album.service addAssets and addAssetsToAlbums; a new album is a new id), so when no album
    is new or moved between a read made before a unit's first read of its sources and a read at the
    gate, no source of the unit joined an album since: the albums read at its start still hold, and the
    gate reads no album per asset. Taking an asset out of an album does not move it, and needs not: a
    source in fewer albums is still covered by its target."""

    def __init__(self) -> None:
        self._latest: dict[str, str | None] | None = None
        self._lock = threading.Lock()

    def before(self, client: ImmichClient) -> dict[str, str | None]:
        """The latest read whose answer came before now (one read when there is none yet): the baseline
        of a unit that starts now."""
        with self._lock:
            latest = self._latest
        return latest if latest is not None else self.read(client)

    def read(self, client: ImmichClient) -> dict[str, str | None]:
        marks = {album.id: album.updatedAt for album in client.albums()}
        with self._lock:
            self._latest = marks
        return marks

    @staticmethod
    def unchanged(before: dict[str, str | None] | None, now: dict[str, str | None]) -> bool:
        """No album is new or moved since `before` (an album gone from `now` changes no source's set for
        the worse). An album without a marker proves nothing."""
        return before is not None and all(mark is not None and before.get(i) == mark for i, mark in now.items())


class TargetLocks:
    """A lock per internal target, held by a unit from its carry to the end of its verification: units
    whose bytes land on one target (the same photo at two paths) never interleave their writes. Locks
    are taken in one order (sorted ids), so two units never wait for each other."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, target_ids: Iterable[str]) -> Iterator[None]:
        with self._guard:
            locks = [self._locks.setdefault(i, threading.Lock()) for i in sorted(set(target_ids)) if i]
        for lock in locks:
            lock.acquire()
        try:
            yield
        finally:
            for lock in reversed(locks):
                lock.release()


class Sources:
    """The external assets this run took as sources, from its own listing of the selected libraries
    (and the path twins and video halves found for them). The delete gate deletes nothing else."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def add(self, asset: Asset, scope: Scope) -> None:
        if asset.is_external and asset.libraryId in scope.selected and asset.ownerId == scope.user_id:
            with self._lock:
                self._ids.add(asset.id)

    def __contains__(self, asset_id: str) -> bool:
        with self._lock:
            return asset_id in self._ids


WHOLE_FRESH = 5.0  # seconds: a unit that starts later than this after its listing page was read reads its asset itself


@dataclass
class Unit:
    """What the runner hands over: the asset as listed, for a live still the id of its video, and whose
    key moves it (the asset's owner; empty in a run with one key). `no_albums`: when the listing showed
    the asset in no album at all, the user's albums' marks (AlbumMarks) read just before that listing.
    `listed_at`: when the listing showed it untagged and unstacked, with its people (job/run/listing.py),
    the run's monotonic time its page was asked for: the asset as listed is then its whole record."""

    asset: Asset
    video_id: str | None = None
    user: str = ""
    no_albums: dict[str, str | None] | None = field(default=None, compare=False, repr=False)
    listed_at: float | None = field(default=None, compare=False, repr=False)  # `asset` is its whole record, read then

    @property
    def assets(self) -> int:
        return 2 if self.video_id else 1

    def outcome(self) -> Outcome:
        """A new account of this unit (see job/outcome.py: it is ended once, there)."""
        return Outcome.begin(self.asset, self.assets)


@dataclass
class Member:
    """One internal target and the external sources it replaces: a source and its path twins (other
    libraries' assets of the same file, so the same bytes)."""

    role: str  # "still" or "video"
    sources: list[Facts]  # the first is the one whose bytes are brought
    target_id: str = ""
    sha1: str = ""
    size: int = 0
    created: bool = False  # the target was made for this source (by this run or an earlier one)
    made_before: bool = False  # ... by an earlier attempt (a journal, or an upload that answered "duplicate")
    since: float | None = None  # when the job said it was about to upload these bytes (journal.intent)
    transferred: bool = False  # the bytes went over the wire in this run
    fresh: bool = False  # created by this very upload, not yet read back
    provenance: bool = False  # the upload itself carried the complete provenance marker
    sent_expected: dict[str, Any] | None = None  # the record the upload's provenance said the target must hold
    in_trash: bool = False  # the target is an internal twin in the trash (the move restores it in phase two)
    restored: bool = False  # the target was an internal twin in the trash: the move restored it
    marker: dict[str, Any] | None = None  # our provenance on the target before this move touched it
    etag: str | None = None  # the file's ETag (size and modification time) when its bytes were hashed
    proven_at: float = 0.0  # monotonic time of that hashing in this run
    earlier: bool = False  # the bytes were proven by an earlier run (its journal)
    live_target: str | None = None  # a still's target must link to this video (moved, or internal)
    sidecar_at: float | None = None  # when the source's sidecar was copied to a new target (the run's clock)
    sidecar_missing: bool = False  # Immich could not copy the source's sidecar: its file is gone from disk
    expected: Record | None = None  # what the target must hold, once carried
    verified: Asset | None = None  # the target as read when it was verified (its updatedAt bounds the gate's listing)
    carried: dict[str, Record] = field(default_factory=dict)  # each source's record, as the carry read it

    @property
    def source(self) -> Facts:
        return self.sources[0]

    @property
    def ids(self) -> list[str]:
        return [f.asset.id for f in self.sources]


@dataclass
class Identity:
    """Tokens for records (see record.py): the moving assets and their targets compare equal."""

    source: dict[str, str] = field(default_factory=dict)
    target: dict[str, str] = field(default_factory=dict)


@dataclass
class Pending:
    """A unit between its steps: bytes brought (phase one), then carried and verified (phase two),
    then waiting for the delete gate."""

    outcome: Outcome
    stage: list[str]
    unit: Unit
    members: list[Member]  # the video half first, then the still
    ids: Identity
    claim: Claim | None = None
    claim_ids: list[str] = field(default_factory=list)
    claimed_at: float = 0.0  # when the claim was written (the system's monotonic clock: see claim.py)
    verified: bool = False
    albums_before: dict[str, str | None] | None = None  # the user's album marks read before its sources (AlbumMarks)

    @property
    def source_ids(self) -> list[str]:
        return [i for m in self.members for i in m.ids]

    @property
    def created(self) -> bool:
        """Its bytes made a new internal asset (uploaded), rather than joined one (merged)."""
        return self.members[-1].created


def identity(members: list[Member]) -> Identity:
    """Records name the moving assets by tokens. Seen from a source, it and its target are the same
    token (a target that already joined the stack is not "another member"); seen from the target, only
    the target is: an album cover or stack primary still on a source is missing."""
    ids = Identity()
    for member in members:
        token = LIVE if member.role == "video" else SELF
        for source_id in member.ids:
            ids.source[source_id] = token
        if member.target_id:
            ids.source[member.target_id] = token
            ids.target[member.target_id] = token
    return ids

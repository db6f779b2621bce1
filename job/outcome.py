"""How each unit ends, in one room: the outcome kinds and how each is presented (its words, log level,
whether it counts), the reasons of a skip or a hold, the stages a failure can happen at, and the Outcome
itself, which is made here (`Outcome.begin`, `Outcome.of_copy`) and ended here, once, by one of its
ending methods (nothing else sets its kind). Every listed asset ends in exactly one Outcome; one recorder
(job/run/recorder.py) reports it, logs it and counts it, for every command.

- uploaded / merged: moved; the external asset was deleted (or kept, with EXT2INT_DELETE=keep).
- held: the job could move it, but something depends on the file, the asset or the moment in a way the
  move cannot keep whole (another user's library over the same file, a conflict of curated values...).
  Nothing was deleted; the reason says what would release it.
- waiting: Immich has not caught up yet (metadata, faces) or the asset changed while it moved: a later
  run finishes it.
- skipped: nothing to do, by design (offline, trashed, locked, claimed by another run...).
- failed: something went wrong; the stage says where. Nothing was deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from job.values import Worded


class Kind(str, Enum):
    UPLOADED = "uploaded"
    MERGED = "merged"
    HELD = "held"
    WAITING = "waiting"
    SKIPPED = "skipped"
    FAILED = "failed"
    PLANNED = "planned"  # plan only
    # verify only: a moved asset's internal copy, proven again
    VERIFIED = "verified"  # its bytes hold, and what was carried
    CHANGED = "changed"  # its bytes hold; its curation changed since the move (a user's edit, most likely)
    DAMAGED = "damaged"  # its bytes are not the ones moved, or it is gone
    # undo only
    UNDONE = "undone"  # the external asset is back, what the move made or added is taken back


@dataclass(frozen=True)
class KindInfo:
    """How a kind is presented and counted: read by the report, the log line, the metrics, the progress
    bar and the batch alike."""

    text: str  # after its count in the summary line ("3 merged into existing internal assets")
    level: int  # of its log line; a kind at WARNING or above is written in capitals in the summary's list
    final: bool = False  # the asset is moved: its assets and bytes count as moved
    counts: bool = True  # takes a place in the batch and a step of the progress bar (skipped and held do not)
    listed: bool = False  # one line each under the summary: the units that need a look
    run: bool = False  # a kind a move ends as (the metrics' outcome label)


KINDS: dict[Kind, KindInfo] = {
    Kind.UPLOADED: KindInfo("uploaded", logging.INFO, final=True, run=True),
    Kind.MERGED: KindInfo("merged into existing internal assets", logging.INFO, final=True, run=True),
    Kind.HELD: KindInfo("held", logging.WARNING, counts=False, listed=True, run=True),
    Kind.WAITING: KindInfo("waiting", logging.INFO, listed=True, run=True),
    Kind.SKIPPED: KindInfo("skipped", logging.INFO, counts=False, listed=True, run=True),
    Kind.FAILED: KindInfo("failed", logging.WARNING, listed=True, run=True),
    Kind.PLANNED: KindInfo("would move", logging.INFO),
    Kind.VERIFIED: KindInfo("internal copies hold", logging.INFO),
    Kind.CHANGED: KindInfo("changed since the move", logging.INFO, listed=True),
    Kind.DAMAGED: KindInfo("damaged", logging.WARNING, listed=True),
    Kind.UNDONE: KindInfo("undone", logging.INFO),
}
RUN_KINDS = tuple(k for k, info in KINDS.items() if info.run)  # what a move ends as
assert set(KINDS) == set(Kind)


class Reason(Worded):
    """A reason written once: its value (in the report and the metrics' label) with its text (for a
    person)."""


class Skip(Reason):
    OFFLINE = "offline", "Immich marks the file offline (missing on disk): it cannot be downloaded"
    TRASHED = "trashed", "the external asset is in the trash: deleting it was your choice"
    LOCKED = "locked", "the asset is in the locked folder, which an API key cannot read"
    OTHER_OWNER = "other_owner", "the asset belongs to another user: run ext2int with that user's API key"
    NOT_EXTERNAL = "not_external", "the asset is not in an external library"
    LIVE_VIDEO_UNAVAILABLE = "live_video_unavailable", "the video half of this live photo is offline, trashed or missing"
    LIVE_STILL_TRASHED = "live_still_trashed", "the video half of a live photo whose still is in the trash"
    EMPTY = "empty", "the file is empty (0 bytes): there is nothing to move; delete it, or leave it"
    KEPT = "kept", "already copied with EXT2INT_DELETE=keep"
    REIMPORT_LOOP = "reimport_loop", (
        "a re-import of a file already moved: Immich could not delete the original (read-only mount?), so its "
        "library scan imported it again. Give Immich write access to the folder, or add an exclusion pattern for the "
        "file in the library's settings, then delete this external asset")
    CLAIMED = "claimed", "another run of ext2int is moving it right now (its claim expires by itself if that run died)"
    UNDONE = "undone", ("`ext2int undo` took its move back: it stays external. Set EXT2INT_MOVE_UNDONE=true for a run to "
                        "move it again")


class Hold(Reason):
    SHARED_WITH_USER = "shared_with_user", (
        "the file is also in another user's external library that this run does not move: deleting this asset would "
        "delete their photo's file too. Give the run that user's API key as well (IMMICH_API_KEYS_DIR), and their "
        "library, to move both")
    SHARED_UNSELECTED = "shared_unselected", (
        "the file is also in another of your libraries that this run does not move: add it to EXT2INT_LIBRARY_IDS so "
        "both assets move together")
    SHARING_UNKNOWN = "sharing_unknown", (
        "this API key cannot list libraries (not an admin), so whether another user's library holds the same file is "
        "unknown. Use an admin's key for listing, or set EXT2INT_ASSUME_UNSHARED=true if no folder of this library is "
        "in another user's library (see README)")
    IMMICH_STORAGE = "immich_storage", "the file is one of Immich's own files (its upload or library folder): it is not moved"
    LIVE_VIDEO_ELSEWHERE = "live_video_elsewhere", (
        "the video half of this live photo is in a library this run does not move: add it to EXT2INT_LIBRARY_IDS so "
        "both halves move together")
    LIVE_STILL_ELSEWHERE = "live_still_elsewhere", (
        "the video half of a live photo whose still is elsewhere (internal, or another library): moving it would "
        "break that live photo")
    CONFLICT = "conflict", (
        "the external asset and the internal asset holding its bytes have different values for the same field: "
        "change one in Immich so they agree, or choose a policy with EXT2INT_ON_CONFLICT")
    CURATED_SINCE = "curated_since", (
        "undo: the internal copy was curated since the move (see the details): it stays beside the restored external "
        "asset; delete it in Immich if it should go")
    SIDECAR_SHARED = "sidecar_shared", (
        "another asset that this run does not move may read the same XMP sidecar file (IMG_1.CR2 and IMG_1.JPG both "
        "read IMG_1.xmp), and Immich deletes the sidecar with the original: add that asset's library to "
        "EXT2INT_LIBRARY_IDS (or give the run its owner's key) so they move together")
    NAMES_DIFFER = "names_differ", (
        "another asset is at another name of this file (EXT2INT_PATH_ALIASES, or the folders the job sees), but "
        "Immich serves the two with different sizes or times: they may not be one file. Check the aliases")
    FILE_CHANGED = "file_changed", (
        "the file changed on disk after its bytes were copied: it stays. After Immich's next library scan, a run "
        "moves the new version")


class Stage(str, Enum):
    READ = "read"
    CLAIM = "claim"
    DOWNLOAD = "download"
    UPLOAD = "upload"
    PROVE = "prove"
    CARRY = "carry"
    VERIFY = "verify"
    GATE = "gate"
    DELETE = "delete"
    INCOMPLETE = "incomplete"


class EndedTwice(RuntimeError):
    """A unit's outcome was ended a second time: a bug (each unit ends once)."""


@dataclass(slots=True)  # a 100k-asset plan holds 100k of these
class Outcome:
    """One unit's account. Made by `begin` (a listed asset) or `of_copy` (a move already made, for verify
    and undo); ended once by one of the methods below, which set its kind. Until then it reads as failed
    at no stage: an outcome nobody ended is never reported as anything better."""

    asset_id: str
    path: str
    library_id: str
    kind: Kind = Kind.FAILED
    reason: str = ""  # a Skip or Hold value, or the one-line message of a failure or a wait
    stage: str = ""  # failures: where it happened (a Stage value)
    bytes: int = 0
    assets: int = 1  # every external asset the unit stands for (a live pair, path twins)
    target_id: str | None = None
    deleted: bool = False
    differences: list[str] = field(default_factory=list)  # what did not verify, or the conflicting values
    cannot_move: list[str] = field(default_factory=list)
    plan: str = ""  # `plan` only: what would happen
    steps: dict[str, float] = field(default_factory=dict)
    stops_run: str = ""  # a failure no other asset can avoid (a missing permission): the run stops
    ended: bool = False

    @classmethod
    def begin(cls, asset: Any, assets: int = 1) -> Outcome:
        """The outcome of a unit whose first asset is `asset` (an Asset: id, originalPath, libraryId)."""
        return cls(asset.id, asset.originalPath, asset.libraryId or "", assets=assets)

    @classmethod
    def of_copy(cls, entry: dict, assets: int, target_id: str) -> Outcome:
        """The outcome of a move already made, from its copy's provenance entry for its first source."""
        return cls(str(entry.get("source", "")), str(entry.get("path", "")), str(entry.get("library", "")),
                   assets=assets, target_id=target_id)

    # --- the ways a unit ends: each sets the kind once ------------------------------------------------

    def _end(self, kind: Kind, reason: str, differences: list[str] | tuple[str, ...] | None = None) -> Outcome:
        if self.ended:
            raise EndedTwice(f"{self.path}: ended as {self.kind.value}, then as {kind.value}")
        self.ended, self.kind, self.reason = True, kind, reason
        if differences is not None:
            self.differences = list(differences)
        return self

    def hold(self, hold: Hold, *details: str) -> Outcome:
        return self._end(Kind.HELD, hold.value, details)

    def skip(self, skip: Skip) -> Outcome:
        return self._end(Kind.SKIPPED, skip.value)

    def fail(self, stage: Stage, problem: str | BaseException, differences: list[str] | None = None) -> Outcome:
        """`problem`: a message, or the exception itself: one that names a missing permission (the key's,
        so every other unit would fail the same way) stops the run."""
        self.stage = stage.value
        permission = getattr(problem, "permission", None)
        if permission:
            self.stops_run = f"the API key lacks {permission}"
        return self._end(Kind.FAILED, str(problem), differences or [])

    def wait(self, message: str, *details: str) -> Outcome:
        return self._end(Kind.WAITING, message, details if details else None)

    def moved(self, created: bool, deleted: bool = False) -> Outcome:
        """Moved: uploaded (a new internal asset) or merged (into one that held its bytes already)."""
        self.deleted = deleted
        return self._end(Kind.UPLOADED if created else Kind.MERGED, "")

    def planned(self, label: str) -> Outcome:
        self.plan = label
        return self._end(Kind.PLANNED, "")

    def verified(self, reason: str) -> Outcome:
        return self._end(Kind.VERIFIED, reason)

    def changed(self, reason: str, differences: list[str] | None = None) -> Outcome:
        return self._end(Kind.CHANGED, reason, differences)

    def damaged(self, reason: str, differences: list[str] | None = None) -> Outcome:
        return self._end(Kind.DAMAGED, reason, differences)

    def undone(self, reason: str) -> Outcome:
        return self._end(Kind.UNDONE, reason)

    # --- how it reads -------------------------------------------------------------------------------

    @property
    def info(self) -> KindInfo:
        return KINDS[self.kind]

    @property
    def reason_text(self) -> str:
        """The reason as a person reads it."""
        if self.kind is Kind.SKIPPED:
            return Skip(self.reason).text
        if self.kind is Kind.HELD:
            return Hold(self.reason).text
        return self.reason

    def line(self, loud: bool = False) -> str:
        """The unit in one line, for its log line and the summary's list (`loud`: a kind at WARNING or above
        in capitals, to stand out in a list)."""
        word = self.kind.value.upper() if loud and self.info.level >= logging.WARNING else self.kind.value
        if self.info.final:
            return f"{word} {self.path} -> {self.target_id}"
        if self.kind is Kind.FAILED:
            return f"{word} [{self.stage}] {self.path}: {self.reason}"
        return f"{word} {self.path}: {self.reason_text}"

    @property
    def label(self) -> str:
        """The metric's `reason` label: the skip or hold reason, or the failure's stage."""
        if self.kind in (Kind.SKIPPED, Kind.HELD):
            return self.reason
        if self.kind is Kind.FAILED:
            return self.stage
        return ""

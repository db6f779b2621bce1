"""Pure decisions: given what is known about a unit, what happens to it. No I/O here.

`decide` looks at one external asset (and its live-photo video) before anything is touched; `file_holds`
and `twins` look at who else holds the same file. The mover asks them when it reads a unit, and the
delete gate asks them again, with fresh facts, right before it deletes (`job/move/gate.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from enum import Enum

from job import journal, paths
from job.immich.models import Asset, Library
from job.outcome import Hold, Outcome, Skip
from job.settings import DeleteMode


class Action(str, Enum):
    MOVE = "move"  # bring the bytes, carry, verify, delete
    FINISH = "finish"  # an earlier run brought the bytes (its journal says where): verify, delete
    SKIP = "skip"
    HOLD = "hold"


@dataclass(frozen=True)
class Decision:
    action: Action
    skip: Skip | None = None
    hold: Hold | None = None
    details: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """What `plan` prints."""
        if self.action is Action.SKIP:
            return f"skip ({self.skip.value})"
        if self.action is Action.HOLD:
            return f"hold ({self.hold.value})"
        if self.action is Action.FINISH:
            return "finish (copied earlier: verify, delete)"
        return "move (upload, or merge if already internal)"

    def end(self, outcome: Outcome) -> Outcome:
        """A skip or a hold ends the unit's outcome with its reason; a move is planned (`plan` only)."""
        if self.action is Action.SKIP:
            return outcome.skip(self.skip)
        if self.action is Action.HOLD:
            return outcome.hold(self.hold, *self.details)
        return outcome.planned(self.label)


MOVE = Decision(Action.MOVE)
FINISH = Decision(Action.FINISH)


def skip(reason: Skip) -> Decision:
    return Decision(Action.SKIP, skip=reason)


def hold(reason: Hold, *details: str) -> Decision:
    return Decision(Action.HOLD, hold=reason, details=details)


@dataclass(frozen=True)
class Scope:
    """What a run may move: its user, the libraries it selected, and what it knows of all libraries."""

    user_id: str
    selected: frozenset[str]
    libraries: tuple[Library, ...] = ()  # every library the key can see (all of them with an admin key)
    complete: bool = True  # False: the key cannot list libraries, other users' are unknown
    assume_unshared: bool = False  # EXT2INT_ASSUME_UNSHARED: the user asserts no other user's library holds these files
    owners: dict[str, str] = field(default_factory=dict)  # user id -> name, for messages
    media_root: str | None = None  # Immich's own media folder, once an internal asset showed it
    acting: frozenset[str] = frozenset()  # every user the run holds a key for (it moves their selected libraries)
    aliases: paths.Aliases = paths.Aliases()  # other names of one folder (EXT2INT_PATH_ALIASES, what the job sees)

    def names(self, path: str) -> tuple[str, ...]:
        """Every path under which a library may hold the file at `path` (itself first)."""
        return self.aliases.names(path, self._roots)

    @cached_property
    def _roots(self) -> paths.Roots:
        return paths.Roots.of(root for lib in self.libraries for root in lib.importPaths)

    @cached_property
    def covering(self) -> paths.Covering:
        """The libraries that could hold a file under any of the names given (`paths.covering`, indexed)."""
        return paths.Covering(self.libraries)

    def library_name(self, library_id: str | None) -> str:
        found = next((lib for lib in self.libraries if lib.id == library_id), None)
        return f"'{found.name}'" if found and found.name else str(library_id)

    def describe(self, library: Library) -> str:
        owner = self.owners.get(library.ownerId, library.ownerId)
        return f"{owner}'s library '{library.name or library.id}'"


def decide(source: Asset, *, scope: Scope, delete_mode: DeleteMode, entry: dict | None = None,
           video: Asset | None = None, video_expected: bool = False, stills: list[Asset] | None = None,
           move_undone: bool = False) -> Decision:
    """What to do with `source` (and its live-photo `video`, when it is a still with one). For a hidden
    video that no listed still points at, `stills` are the stills that use it as their video. An asset
    whose move `ext2int undo` took back stays, unless `move_undone`."""
    if source.ownerId != scope.user_id:
        return skip(Skip.OTHER_OWNER)
    if not source.is_external:
        return skip(Skip.NOT_EXTERNAL)
    if source.isTrashed:
        return skip(Skip.TRASHED)
    if source.isOffline:
        return skip(Skip.OFFLINE)
    if source.visibility == "locked":
        return skip(Skip.LOCKED)
    if source.size == 0:
        return skip(Skip.EMPTY)
    if video_expected:
        if video is None or video.isOffline or video.isTrashed or video.ownerId != scope.user_id:
            return skip(Skip.LIVE_VIDEO_UNAVAILABLE)
        if video.is_external and video.libraryId not in scope.selected:
            return hold(Hold.LIVE_VIDEO_ELSEWHERE, f"its video {video.originalPath} is in library "
                                                   f"{scope.library_name(video.libraryId)}")
    if stills:
        live = [s for s in stills if not s.isTrashed]
        if not live:
            return skip(Skip.LIVE_STILL_TRASHED)
        return hold(Hold.LIVE_STILL_ELSEWHERE, *(f"{s.originalPath} uses it as its video" for s in live))
    state = journal.state_of(entry)
    if state in (journal.State.UNDOING, journal.State.UNDONE):
        return MOVE if move_undone and state is journal.State.UNDONE else skip(Skip.UNDONE)
    if journal.journal_matches(entry, source):
        if state is journal.State.LOOP:
            return skip(Skip.REIMPORT_LOOP)
        if state is journal.State.KEPT and delete_mode is DeleteMode.KEEP:
            return skip(Skip.KEPT)
        return FINISH
    return MOVE


def moves_with(video: Asset | None, scope: Scope) -> bool:
    """Is a still's video moved (and deleted) with it? Only when it is itself an external asset of a
    selected library; any other video (an internal one from a phone backup) is linked to, never
    deleted, never uploaded as a source."""
    return video is not None and video.is_external and video.libraryId in scope.selected


# --- who else holds the file ------------------------------------------------------------------------


@dataclass(frozen=True)
class FileView:
    """What the libraries say about one file: a hold; or whether the user's own assets at the path must
    be looked up (another of the user's libraries covers it, or the libraries are unknown), and which
    other users' libraries, moved by this run too, hold it (their assets of the file go with it)."""

    hold: Decision | None = None
    look_up: bool = False
    partners: tuple[Library, ...] = ()


def file_holds(path: str, library_id: str | None, scope: Scope) -> FileView:
    """Deleting an external asset for good deletes its file, whatever else points at it. Which other
    libraries could hold the same file, and may this run let it go?"""
    names = scope.names(path)
    if any(paths.in_immich_storage(name, scope.media_root) for name in names):
        return FileView(hold(Hold.IMMICH_STORAGE, f"{path} is inside Immich's media folder {scope.media_root}"))
    others = [lib for lib in scope.covering(names) if lib.id != library_id]
    if len(names) > 1:  # under another name the file may also be in its own library, as a second asset
        others += [lib for lib in scope.libraries if lib.id == library_id and paths.covering([lib], names[1:])]
    theirs = [lib for lib in others if lib.ownerId != scope.user_id]
    partners = tuple(lib for lib in theirs if lib.ownerId in scope.acting and lib.id in scope.selected)
    held = [lib for lib in theirs if lib not in partners]
    if held:
        return FileView(hold(Hold.SHARED_WITH_USER, *(_why_held(lib, scope) for lib in held)))
    if not scope.complete and not scope.assume_unshared:
        return FileView(hold(Hold.SHARING_UNKNOWN))
    return FileView(look_up=any(lib.ownerId == scope.user_id for lib in others) or not scope.complete,
                    partners=partners)


PROBE = ".ext2int-any-extension"  # a name no exclusion pattern names: could a library hold SOME file of that stem?


def sidecar_readers(path: str, scope: Scope) -> tuple[Decision | None, frozenset[str]]:
    """Immich deletes a file's sidecar with it, and `IMG_1.xmp` may be read by every `IMG_1.*` of the folder.
    Other users' assets cannot be searched without their key, so any other user's library that could hold
    such a file (its import paths and exclusion patterns, for a name of that stem) holds the file, unless
    the run moves that library too: then the users whose assets of that stem must be looked up."""
    names = scope.names(path)
    probes = [paths.stem_of(name) + PROBE for name in names]
    theirs = [lib for lib in scope.covering(probes) if lib.ownerId != scope.user_id]
    held = [lib for lib in theirs if lib.ownerId not in scope.acting or lib.id not in scope.selected]
    if held:
        return hold(Hold.SIDECAR_SHARED, *(f"{scope.describe(lib)} may hold a file beside {path} that reads the same "
                                           f"XMP sidecar" for lib in held)), frozenset()
    return None, frozenset(lib.ownerId for lib in theirs)


def _why_held(library: Library, scope: Scope) -> str:
    owner = scope.owners.get(library.ownerId, library.ownerId)
    if library.ownerId in scope.acting:
        return f"also in {scope.describe(library)}, which EXT2INT_LIBRARY_IDS leaves out: add it to move both"
    return f"also in {scope.describe(library)}: give this run {owner}'s API key too (IMMICH_API_KEYS_DIR) to move both"


def twins(source: Asset, found: Iterable[Asset], scope: Scope) -> tuple[Decision | None, list[Asset]]:
    """The user's other live assets of the same file (at the same path, or under another of its names):
    path twins in selected libraries move with the source (same file, same bytes, one target); anything
    else holds it."""
    names = scope.names(source.originalPath)
    moving: list[Asset] = []
    for other in found:
        if other.id == source.id or other.originalPath not in names or other.isTrashed or other.isOffline:
            continue
        if not other.is_external:
            return hold(Hold.IMMICH_STORAGE, f"{other.originalPath} is also the file of internal asset {other.id}"), []
        if other.libraryId not in scope.selected:
            return hold(Hold.SHARED_UNSELECTED, f"also in your library {scope.library_name(other.libraryId)}"), []
        moving.append(other)
    return None, sorted(moving, key=lambda a: a.id)


def sharing(scope: Scope) -> list[str]:
    """`ext2int libraries`: which libraries share files with which (by path or by another name), and what
    that means for a move."""
    lines = []
    for a, b, folder, aliased in paths.shared_folders(scope.libraries, scope.aliases):
        how = "under another name: an alias, or a link the job sees" if aliased else "the same path"
        if a.ownerId == b.ownerId:
            meaning = "select both and their assets of one file move together; select one and those files are held"
        else:
            meaning = ("those files are held unless one run holds both owners' keys and moves both libraries; their "
                       "assets then move together, each to its owner")
        lines.append(f"{scope.describe(a)} and {scope.describe(b)} share {folder} ({how}): {meaning}")
    return lines

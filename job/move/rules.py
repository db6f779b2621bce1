"""The delete gate's rules, pure: given what was read at the moment of deletion (`evidence.gather`), may a
unit's sources be deleted now? And which units must go together: a file that several users' libraries
hold goes only when every one of its assets, of every user, has a verified internal copy (`groups`).
The gate (`gate.py`) reads the evidence, asks these rules, and is the one place that deletes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from job.decide import Scope
from job.facts import Facts
from job.immich.models import Asset
from job.move.context import Member, Pending
from job.move.evidence import Evidence, FileNow
from job.outcome import Hold, Outcome, Stage
from job.record import Policy, Record, differences, merge, record_of, show_value


class Ruling(str, Enum):
    PASS = "pass"  # delete it now
    HOLD = "hold"  # something depends on it that the move cannot keep whole: a person must act
    WAIT = "wait"  # not now: a later run finishes it
    FAIL = "fail"  # it must not be deleted, and no later run will change that by itself


@dataclass(frozen=True)
class Verdict:
    kind: Ruling
    hold: Hold | None = None
    message: str = ""
    details: tuple[str, ...] = ()

    @property
    def passes(self) -> bool:
        return self.kind is Ruling.PASS

    def end(self, outcome: Outcome, created: bool) -> Outcome:
        """The one translation of a verdict into the unit's outcome (`created`: its bytes made a new
        internal asset). A pass means its sources were deleted."""
        if self.kind is Ruling.PASS:
            return outcome.moved(created, deleted=True)
        if self.kind is Ruling.HOLD:
            return outcome.hold(self.hold, *self.details)
        if self.kind is Ruling.WAIT:
            return outcome.wait(self.message, *self.details)
        return outcome.fail(Stage.GATE, self.message, list(self.details))


PASS = Verdict(Ruling.PASS)


def _hold(reason: Hold, *details: str) -> Verdict:
    return Verdict(Ruling.HOLD, hold=reason, details=details)


def _wait(message: str, *details: str) -> Verdict:
    return Verdict(Ruling.WAIT, message=message, details=details)


def _fail(message: str) -> Verdict:
    return Verdict(Ruling.FAIL, message=message)


# --- the judgement ---------------------------------------------------------------------------------------


def judge(pending: Pending, evidence: Evidence, *, scope: Scope, is_source: Callable[[str], bool],
          claim_holds: Callable[[Facts], bool]) -> Verdict:
    """May the sources of `pending` be deleted now? The first rule that does not hold decides."""
    unit_ids = set(pending.source_ids)
    for member, file in zip(pending.members, evidence.files):
        for source_id in member.ids:
            now = evidence.sources.get(source_id)
            verdict = _source_now(source_id, now, member, pending, scope, is_source, claim_holds)
            if verdict is not PASS:
                return verdict
        verdict = _target_now(member, evidence.targets.get(member.target_id), pending, scope.user_id)
        if verdict is not PASS:
            return verdict
        verdict = _file_verdict(member, file, unit_ids, scope)
        if verdict is not PASS:
            return verdict
        verdict = _sidecar_verdict(member, file, unit_ids, scope)
        if verdict is not PASS:
            return verdict
    for stills in evidence.stills_of.values():
        outside = [s for s in stills if s.id not in unit_ids]
        if outside:
            return _hold(Hold.LIVE_STILL_ELSEWHERE, *(f"{s.originalPath} uses it as its video" for s in outside))
    return PASS


def _source_now(source_id: str, now: Facts | None, member: Member, pending: Pending, scope: Scope,
                is_source: Callable[[str], bool], claim_holds: Callable[[Facts], bool]) -> Verdict:
    if not is_source(source_id):
        return _fail(f"{source_id} is not an asset this run listed as a source: not deleted")
    if now is None or now.asset.isTrashed or now.asset.isOffline:
        return _wait("the external asset was deleted, trashed or went offline while it moved")
    asset = now.asset
    if not asset.is_external or asset.libraryId not in scope.selected or asset.ownerId != scope.user_id:
        return _fail(f"{asset.originalPath} is no longer an external asset of a selected library")
    if not claim_holds(now):
        return _wait("this run's claim on the asset ran out or was taken over: a later run finishes it")
    # what the source held when carried, or the target holds now, is no change; anything else is
    then = member.carried.get(source_id)
    allowed = member.expected if then is None else merge(then, member.expected, Policy.EXTERNAL)[0]
    changed = differences(record_of(now, pending.ids.source), allowed)
    if changed:
        return _wait("it was curated while it moved: a later run carries the change",
                     *(f"{asset.originalFileName}: {d}" for d in changed))
    return PASS


# What the gate's read of the target shows of its record (the asset alone: no albums, key/values, faces)
ON_THE_ASSET = frozenset({"favorite", "visibility", "description", "rating", "taken_at", "time_zone", "gps", "tags"})


def disproof(target: Asset, sha1: str, size: int, user_id: str, source: Asset | None = None) -> str:
    """Why `target` does not prove to hold the bytes we hashed (`sha1`, `size`) for `user_id`; '' when it
    does. `source`: the external asset they came from, whose size Immich knows from its last scan. The one
    proof of a target's bytes: after the upload, while it settles, and at the gate."""
    if target.is_external:
        return f"the duplicate Immich named ({target.id}) is not an internal asset"
    if target.ownerId != user_id:
        return f"the target {target.id} belongs to another user"
    if target.checksum != sha1:
        return f"checksum differs: downloaded {sha1}, internal asset {target.id} has {target.checksum}"
    if target.size is not None and target.size != size:
        return f"size differs: downloaded {size} bytes, internal asset {target.id} has {target.size}"
    if source is not None and source.size is not None and source.size != size:
        return (f"downloaded {size} bytes but Immich knows the file as {source.size} bytes: "
                "the file changed on disk since the last library scan; rescan the library and run again")
    return ""



# What a user can change on an asset in the instant between the gate's last read and the delete, which
# the trash watch proves afterwards (links, stacks, faces, edits and covers are the job's own doing there).
WATCHED_FIELDS = ("favorite", "visibility", "description", "rating", "taken_at", "time_zone", "gps", "tags", "albums",
                  "metadata")


def trash_verdict(entry: dict, hashed: tuple[str, int] | None, now: Record | None, expected: Record | None) -> str:
    """Why a source the gate trashed must come back from the trash before Immich purges it ('' when its
    move still holds): `entry` its journal (the bytes moved), `hashed` its file hashed now (None: its ETag
    had not changed), `now` its record read now and `expected` what the target was verified to hold
    (None, None: only the file is checked)."""
    if hashed is not None and hashed != (entry.get("sha1"), entry.get("size")):
        return (f"its file changed on disk after the move ({hashed[1]} bytes of other content than the "
                f"{entry.get('size')} bytes copied): restored so that Immich's purge cannot delete the new bytes; "
                "after Immich's next library scan a run moves them as a new version")
    if now is not None and expected is not None:
        new = [d for d in differences(now, expected) if d.field in WATCHED_FIELDS]
        if new:
            return ("curated at the moment of its move, after the last check: "
                    + "; ".join(f"{d.field} {show_value(d.first)}" for d in new)
                    + ": restored so that a run carries it to the internal copy (this run, unless it stops first)")
    return ""


def _target_now(member: Member, target: Asset | None, pending: Pending, user_id: str) -> Verdict:
    if target is None or target.isTrashed:
        return _fail(f"the internal asset {member.target_id} was deleted or trashed during the move")
    problem = disproof(target, member.sha1, member.size, user_id)
    if problem:
        return _fail(f"the internal asset {member.target_id} no longer holds the proven bytes: {problem}")
    if any(target.originalPath == f.asset.originalPath for f in member.sources):
        return _hold(Hold.IMMICH_STORAGE, f"{target.originalPath} is the internal asset's own file")
    if member.live_target and target.livePhotoVideoId != member.live_target:
        return _wait(f"the new still {target.id} is not linked to its video {member.live_target} (yet)")
    if member.expected is not None:
        # what the unit verified is still there: another unit's carry into the same target (the same
        # photo at two paths), another process, or an edit may have written over it since
        changed = [d for d in differences(member.expected, record_of(Facts(asset=target), pending.ids.target))
                   if d.field in ON_THE_ASSET]
        if changed:
            return _wait("the internal asset changed after it was verified (another move into it, or an edit): "
                         "a later run looks again", *(f"{target.id}: {d}" for d in changed))
    return PASS


def _file_verdict(member: Member, file: FileNow, unit_ids: set[str], scope: Scope) -> Verdict:
    path = member.source.asset.originalPath
    if file.hashed is not None and file.hashed != (member.sha1, member.size):
        return _hold(Hold.FILE_CHANGED, f"{path} now holds {file.hashed[1]} bytes of other content than the "
                                        f"{member.size} bytes copied")
    if file.view.hold is not None:
        decision = file.view.hold
        return _hold(decision.hold, *decision.details)
    names = file.names or (path,)
    for other in file.found or ():
        if other.id in unit_ids or other.originalPath not in names or other.isTrashed or other.isOffline:
            continue
        if not other.is_external:
            return _hold(Hold.IMMICH_STORAGE, f"{path} is also the file of internal asset {other.id}")
        if other.libraryId not in scope.selected:
            return _hold(Hold.SHARED_UNSELECTED, f"also in your library {scope.library_name(other.libraryId)}")
        return _wait(f"another asset of the same file appeared in library {scope.library_name(other.libraryId)}")
    return PASS


def _sidecar_verdict(member: Member, file: FileNow, unit_ids: set[str], scope: Scope) -> Verdict:
    """Immich deletes the sidecar with the original. Another live asset that may read the same sidecar
    (`IMG_1.CR2` beside `IMG_1.JPG`, both reading `IMG_1.xmp`) goes with the unit when this run moves it
    (`partners_of`: the gate deletes them together, once every one has its copy); anywhere else, the
    unit is held."""
    path = member.source.asset.originalPath
    for other in file.siblings:
        if other.id in unit_ids or not _live_external(other) or other.libraryId in scope.selected:
            continue
        where = f"library {scope.library_name(other.libraryId)}"
        if other.ownerId != scope.user_id:
            where = f"{scope.owners.get(other.ownerId, other.ownerId)}'s {where}"
        return _hold(Hold.SIDECAR_SHARED, f"{other.originalPath} ({where}) may read the same XMP sidecar as {path}")
    if file.sidecar_hold is not None:
        return _hold(file.sidecar_hold.hold, *file.sidecar_hold.details)
    moving = {name for other in file.siblings if other.libraryId in scope.selected for name in scope.names(other.originalPath)}
    for beside in file.files_beside:
        if beside not in moving and beside not in file.names:
            return _hold(Hold.SIDECAR_SHARED, f"{beside} is beside {path}, in no library this run moves, and may read "
                                              "the same XMP sidecar")
    return PASS


def _live_external(asset: Asset) -> bool:
    return asset.is_external and not asset.isTrashed and not asset.isOffline


# --- assets that must go together ----------------------------------------------------------------------


def partners_of(evidence: Evidence, scope: Scope) -> dict[str, Asset]:
    """The assets that must go with the unit: other users' assets of its files, in libraries this run moves,
    and the assets of selected libraries (of any user the run moves) that may read one of its sidecars."""
    found = {a.id: a for file in evidence.files for a in file.partners}
    found |= {a.id: a for file in evidence.files for a in file.siblings
              if _live_external(a) and a.libraryId in scope.selected}
    return found


@dataclass
class Group:
    """Units that go together: each holds, or needs, the others' assets of one file."""

    units: list[Pending]
    missing: dict[str, Asset]  # assets of the group's files that no unit at the gate holds yet


def groups(units: list[tuple[Pending, dict[str, Asset]]]) -> list[Group]:
    """Units (each with the other users' assets it needs) joined by those assets: a group whose needs
    are all held by its own units may go; one with `missing` assets waits for them."""
    holder = {source_id: i for i, (p, _) in enumerate(units) for source_id in p.source_ids}
    parent = list(range(len(units)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, (_, needs) in enumerate(units):
        for asset_id in needs:
            if asset_id in holder:
                parent[root(i)] = root(holder[asset_id])
    found: dict[int, Group] = {}
    for i, (pending, needs) in enumerate(units):
        group = found.setdefault(root(i), Group([], {}))
        group.units.append(pending)
        group.missing.update({k: v for k, v in needs.items() if k not in holder})
    return list(found.values())


# --- undo: letting go of a copy the job made -----------------------------------------------------------


def copy_verdict(target: Asset | None, marker: dict | None, sources_now: dict[str, Asset | None], user_id: str) -> Verdict:
    """May `ext2int undo` trash this internal asset? Only a copy the job itself made, or a twin it restored
    from the trash (its provenance says so, for exactly these sources), of the user, while every one of its
    sources is back, live, and holds the file: the photo is then in the external library again."""
    if target is None or target.isTrashed:
        return Verdict(Ruling.PASS, message="already gone")
    if target.is_external or target.ownerId != user_id:
        return _fail(f"{target.id} is not an internal asset of the user: not deleted")
    sources = {s.get("source") for s in (marker or {}).get("sources", [])}
    ours = (marker or {}).get("created") or (marker or {}).get("restored")
    if not ours or not sources or not sources <= set(sources_now):
        return _hold(Hold.CONFLICT, f"{target.id} was not made by the job for these assets alone: it stays")
    for source_id, now in sources_now.items():
        if now is None or now.isTrashed or now.isOffline or not now.is_external or now.ownerId != user_id:
            return _wait(f"the external asset {source_id} is not back and whole: its copy stays")
    return PASS

"""One unit (a photo, a video, or a live photo with its video half) through its steps, each safe to
repeat. The steps read top to bottom in `Mover._move`:

    read the source  ->  decide  ->  bring the bytes (transfer, or the target an earlier run made)
    ->  prove the bytes  ->  journal  ->  carry the curation  ->  settle and verify  ->  delete

A run killed between any two steps leaves a state the next run completes: the upload deduplicates,
the journal on the source says which target holds its bytes, every carry is computed from what the
target lacks, and nothing is deleted until the target is proven and verified in the same attempt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from job.immich import errors
from job.immich.client import Capabilities, ImmichClient
from job.immich.models import Asset, Face
from job.plan import JOURNAL_VERSION, decide, journal_matches
from job.record import (
    FACE_IOU, LIVE, MARKER, SELF, FaceBox, Facts, Record, Write, differences, face_box, merge, record_of,
    unmatched_faces, writes_for,
)
from job.report import Outcome
from job.transfer import Transferred, stream_to_upload, with_retries

MAX_MARKER_SOURCES = 20


class StepFailed(Exception):
    def __init__(self, stage: str, message: str, differences: list[str] | None = None):
        super().__init__(message)
        self.stage = stage
        self.differences = differences or []


class Waiting(Exception):
    """The target is right so far but Immich has not caught up; a later run finishes the move."""


@dataclass
class RunContext:
    """What every move of a run shares."""

    client: ImmichClient
    caps: Capabilities
    user_id: str
    delete_mode: str = "trash"
    settle_timeout: float = 60.0
    settle_confirm: float = 5.0  # after writing to a new asset, look again this much later (see _settle_and_verify)
    face_wait: float = 6 * 3600.0
    transfer_retries: int = 4
    shared_links: dict[str, frozenset[str]] = field(default_factory=dict)  # asset id -> individual link ids
    memories: dict[str, int] = field(default_factory=dict)  # asset id -> memories showing it
    hard_stop: threading.Event = field(default_factory=threading.Event)
    stack_lock: threading.Lock = field(default_factory=threading.Lock)
    defer_delete: bool | None = None  # True: leave deletes to the runner's batches
    on_bytes: Callable[[int], None] | None = None
    on_step: Callable[[str, float], None] | None = None
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], float] = time.time
    io: ThreadPoolExecutor | None = None  # for requests of one move that do not depend on each other

    def fan(self, *calls: Callable[[], Any]) -> list[Any]:
        """Run independent calls side by side (each is one request, or none): a move then waits for
        the slowest, not for the sum. The first failure is raised once all have ended."""
        if self.io is None or sum(1 for c in calls) <= 1:
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


@dataclass
class Unit:
    """What the runner hands over: the asset as listed, and for a live still the id of its video."""

    asset: Asset
    video_id: str | None = None

    @property
    def assets(self) -> int:
        return 2 if self.video_id else 1


@dataclass
class Identity:
    source: dict[str, str] = field(default_factory=dict)
    target: dict[str, str] = field(default_factory=dict)


@dataclass
class Pending:
    """A unit between the two phases of its move: bytes brought and curation carried, not yet verified."""

    outcome: Outcome
    stage: list[str]
    still: Facts
    brought: list[Brought]
    plans: list[Record]
    ids: Identity


@dataclass
class Brought:
    source: Facts
    target_id: str
    sha1: str
    size: int
    created: bool  # the target was made for this source (by this run or an earlier one)
    transferred: bool
    marker: dict[str, Any] | None = None  # our provenance on the target before this move touched it
    live_target: str | None = None  # for a live still: the internal twin of its video
    fresh: bool = False  # created by this very upload, not yet read back
    provenance: bool = False  # the upload itself carried the complete provenance marker


class Mover:
    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.c = ctx.client

    # --- the whole move ------------------------------------------------------------------------

    def move(self, unit: Unit) -> Outcome | Pending:
        """Phase one: read, decide, bring the bytes, carry the curation. Returns the unit's final
        Outcome (skipped, failed, or done when it is stacked), or a Pending for `complete`, which waits
        for Immich to settle, verifies and deletes. The split lets transfers go on while Immich digests
        earlier uploads."""
        outcome = Outcome(
            asset_id=unit.asset.id, path=unit.asset.originalPath, library_id=unit.asset.libraryId or "",
            kind="failed", assets=unit.assets,
        )
        stage = ["read"]
        return self._guard(outcome, stage, lambda: self._start(unit, outcome, stage))

    def complete(self, pending: Pending) -> Outcome:
        """Phase two: settle, verify, delete (or keep). Safe to run in another thread than phase one."""
        return self._guard(pending.outcome, pending.stage, lambda: self._finish(pending))

    def _guard(self, outcome: Outcome, stage: list[str], work: Callable[[], Any]) -> Any:
        """Every way a move can end becomes the outcome's kind, stage and reason."""
        try:
            result = work()
            return result if result is not None else outcome
        except Waiting as wait:
            outcome.kind, outcome.reason = "waiting", str(wait)
        except errors.PermissionMissing as exc:
            outcome.kind, outcome.stage, outcome.reason = "failed", stage[0], str(exc)
            outcome.stops_run = f"the API key lacks {exc.permission}"
        except StepFailed as failure:
            outcome.kind, outcome.stage, outcome.reason = "failed", failure.stage, str(failure)
            outcome.differences = failure.differences
        except errors.ImmichError as exc:
            outcome.kind, outcome.stage, outcome.reason = "failed", stage[0], str(exc)
        except errors.TruncatedTransfer as exc:
            outcome.kind, outcome.stage, outcome.reason = "failed", "download", str(exc)
        return outcome

    def _start(self, unit: Unit, outcome: Outcome, stage: list[str]) -> Pending | None:
        with self._step(outcome, stage, "read"):
            first = self._read_source(unit.asset.id)
        if first.asset.stack is None:
            return self._prepare(unit, outcome, stage, first)
        # Stacked assets move one at a time, both phases under one lock: each reads its stack after the
        # previous one has finished, so none compares itself with a member caught half-way through its
        # own move. One lock for all stacks, not one per stack: on servers without the copy endpoint,
        # joining a stack replaces it with a new one (POST /stacks merges), so its id is no stable key.
        with self.ctx.stack_lock:
            pending = self._prepare(unit, outcome, stage)
            if pending is not None:
                self._finish(pending)
        return None

    def _prepare(self, unit: Unit, outcome: Outcome, stage: list[str], facts: Facts | None = None) -> Pending | None:
        with self._step(outcome, stage, "read"):
            still = facts or self._read_source(unit.asset.id)
            video = self._read_source(still.asset.livePhotoVideoId) if still.asset.livePhotoVideoId else None
            decision = decide(
                still.asset, user_id=self.ctx.user_id, delete_mode=self.ctx.delete_mode, journal=still.marker(),
                video=video.asset if video else None, video_expected=still.asset.livePhotoVideoId is not None,
            )
            outcome.cannot_move = self._cannot_move(still)
        if decision.action == "skip":
            outcome.kind, outcome.reason = "skipped", decision.reason
            return None
        if video is not None and video.asset.ownerId != self.ctx.user_id:
            outcome.kind, outcome.reason = "skipped", "other_owner"
            return None

        brought: list[Brought] = []
        live_target = None
        for facts in ([video] if video else []) + [still]:  # the video half first: the still links to it
            with self._step(outcome, stage, "upload"):
                item = self._bring(facts, live_target=live_target if facts is still else None)
            brought.append(item)
            if facts is video:
                live_target = item.target_id
            if self._is_reimport_loop(item, outcome):
                return None
        outcome.target_id = brought[-1].target_id
        outcome.bytes = sum(b.size for b in brought if b.transferred)

        # Records name the moving pair by tokens. Seen from the source, source and target are both
        # '@self' (a target that already joined the stack is not "another member"); seen from the
        # target, only the target is: an album cover or stack primary still on the source is missing.
        ids = Identity()
        for item in brought:
            token = LIVE if video is not None and item.source is video else SELF
            ids.source.update({item.source.asset.id: token, item.target_id: token})
            ids.target[item.target_id] = token
        pending = Pending(outcome, stage, still, brought, [], ids)
        try:
            with self._step(outcome, stage, "carry"):
                pending.plans = [self._carry(item, ids) for item in brought]
        except Waiting:
            self._journal_waiting(brought)
            raise
        return pending

    def _finish(self, pending: Pending) -> None:
        outcome, stage, brought, still = pending.outcome, pending.stage, pending.brought, pending.still
        try:
            with self._step(outcome, stage, "verify"):
                for item, expected in zip(brought, pending.plans):
                    self._settle_and_verify(item, expected, pending.ids)
        except Waiting:
            self._journal_waiting(brought)
            raise

        with self._step(outcome, stage, "delete"):
            self._finish_people(still, brought[-1])
            sources = [b.source.asset.id for b in brought]
            if self.ctx.delete_mode == "keep":
                self._write_journals(brought, state="kept")
            elif still.asset.stack is not None or self.ctx.defer_delete is None:
                # a stacked source goes at once, while its stack is locked: the next member must not
                # see it vanish half-way through its own move
                self.c.delete_assets(sources, force=self.ctx.delete_mode == "force")
                outcome.deleted = True
            else:
                outcome.pending_delete = sources  # the runner deletes verified sources in batches
        outcome.kind = "uploaded" if brought[-1].created else "merged"

    def _journal_waiting(self, brought: list[Brought]) -> None:
        """The journal tells a later run which target holds these bytes: it finishes the move without
        a second transfer (once it has re-proven the target)."""
        self._write_journals(brought, state="copied")

    @contextmanager
    def _step(self, outcome: Outcome, stage: list[str], name: str) -> Iterator[None]:
        stage[0] = name
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            outcome.steps[name] = outcome.steps.get(name, 0.0) + elapsed
            if self.ctx.on_step:
                self.ctx.on_step(name, elapsed)

    # --- read ------------------------------------------------------------------------------------

    def _read_source(self, asset_id: str) -> Facts:
        """Everything curated about the source, read side by side. Optional kinds are read only when
        the asset has them, so a plain photo costs three reads."""
        for attempt in range(1, 4):
            asset, albums, metadata = self.ctx.fan(lambda: self.c.asset(asset_id), lambda: self.c.albums_of(asset_id),
                                                   lambda: self.c.metadata_of(asset_id))
            try:
                faces, edits, stack = self.ctx.fan(
                    (lambda: tuple(self.c.faces_of(asset_id))) if asset.people else (lambda: ()),
                    (lambda: tuple(self.c.edits_of(asset_id))) if asset.isEdited and self.ctx.caps.edits else (lambda: None),
                    (lambda: self.c.stack(asset.stack.id)) if asset.stack else (lambda: None),
                )
                break
            except (errors.NotFound, errors.BadRequest):
                # The stack can vanish between reading the asset and reading its stack: another
                # member's move (POST /stacks, or the copy endpoint merging stacks) replaces it with a
                # new one. Read the asset again to learn the new stack; a real error repeats.
                if asset.stack is None or attempt == 3:
                    raise
        return Facts(asset=asset, albums=tuple(albums), metadata=tuple(metadata), faces=faces, edits=edits,
                     stack=stack, shared_links=self.ctx.shared_links.get(asset_id, frozenset()))

    def _read_target(self, target_id: str, like: Facts) -> Facts:
        """The target, read with the same kinds the source has (what the comparison needs), side by side."""
        c = self.c
        asset, albums, metadata, faces, edits, links = self.ctx.fan(
            lambda: c.asset(target_id),
            (lambda: tuple(c.albums_of(target_id))) if like.albums else (lambda: ()),
            (lambda: tuple(c.metadata_of(target_id))) if _user_metadata(like) else (lambda: ()),
            (lambda: tuple(c.faces_of(target_id))) if like.faces else (lambda: ()),
            (lambda: tuple(c.edits_of(target_id))) if like.edits is not None else (lambda: None),
            (lambda: frozenset(link for link in like.shared_links
                               if any(a.id == target_id for a in c.shared_link(link).assets))) if like.shared_links
            else (lambda: frozenset()),
        )
        stack = c.stack(asset.stack.id) if asset.stack and like.stack else None
        return Facts(asset=asset, albums=albums, metadata=metadata, faces=faces, edits=edits, stack=stack,
                     shared_links=links)

    def _cannot_move(self, source: Facts) -> list[str]:
        notes = []
        for album in source.albums or ():
            if album.shared and album.isActivityEnabled:
                count = self.c.activity_count(album.id, source.asset.id)
                if count:
                    notes.append(f"{count} comments/likes in shared album '{album.albumName}' stay with the old asset")
        shown = self.ctx.memories.get(source.asset.id, 0)
        if shown:
            notes.append(f"shown in {shown} memories; Immich makes new memories from the moved photo")
        return notes

    # --- bytes -----------------------------------------------------------------------------------

    def _bring(self, source: Facts, *, live_target: str | None) -> Brought:
        """Make sure an internal asset of ours holds exactly the source's bytes, and prove it."""
        journal = source.marker()
        if journal_matches(journal, source.asset) and journal.get("state") in ("copied", "kept"):
            target = self._try_journal_target(journal)
            if target is not None:
                self._restore_if_trashed(target)
                created = bool(journal.get("created"))
                return Brought(source, target.id, journal["sha1"], journal["size"], created, False,
                               None if created else target_marker_of(self.c, target.id), live_target)

        def attempt() -> Transferred:
            return stream_to_upload(
                self.c, source.asset, visibility=source.asset.visibility, live_photo_video_id=live_target,
                marker=self._upload_marker(source.asset), on_bytes=self.ctx.on_bytes,
            )

        try:
            sent = with_retries(attempt, self.ctx.transfer_retries, stop=self.ctx.hard_stop.is_set)
        except errors.TruncatedTransfer as exc:
            raise StepFailed("download", str(exc)) from None
        if sent.result.status == "created":
            # Immich computed the new asset's checksum from the very bytes we hashed: the first verify
            # read proves it (checksum and size) before anything is deleted, and removes it if wrong.
            return Brought(source, sent.result.id, sent.sha1, sent.size, True, True, None, live_target, fresh=True,
                           provenance=sent.provenance)
        target = self.c.asset(sent.result.id)
        problem = self._disproof(target, sent.sha1, sent.size, source.asset)
        if problem:
            raise StepFailed("prove", problem)
        marker = target_marker_of(self.c, target.id)
        created = _made_for(marker, source.asset.id)
        self._restore_if_trashed(target)
        return Brought(source, target.id, sent.sha1, sent.size, created, True, None if created else marker, live_target)

    def _try_journal_target(self, journal: dict[str, Any]) -> Asset | None:
        try:
            target = self.c.asset(journal["target"])
        except errors.NotFound:
            return None
        if self._disproof(target, journal["sha1"], journal["size"], None):
            return None
        return target

    def _disproof(self, target: Asset, sha1: str, size: int, source: Asset | None) -> str:
        """Why `target` does not prove to hold the bytes we hashed; '' when it does."""
        if target.is_external:
            return f"the duplicate Immich named ({target.id}) is not an internal asset"
        if target.ownerId != self.ctx.user_id:
            return f"the target {target.id} belongs to another user"
        if target.checksum != sha1:
            return f"checksum differs: downloaded {sha1}, internal asset {target.id} has {target.checksum}"
        if target.size is not None and target.size != size:
            return f"size differs: downloaded {size} bytes, internal asset {target.id} has {target.size}"
        if source is not None and source.size is not None and source.size != size:
            return (f"downloaded {size} bytes but Immich knows the file as {source.size} bytes: "
                    "the file changed on disk since the last library scan; rescan the library and run again")
        return ""

    def _restore_if_trashed(self, target: Asset) -> None:
        """A duplicate in the trash would vanish when the trash is emptied: the photo was visible as
        an external asset, so it must stay visible."""
        if target.isTrashed:
            self.c.restore([target.id])

    def _upload_marker(self, source: Asset) -> dict[str, Any]:
        """Provenance sent with the upload itself (transfer adds the bytes' SHA-1 and size)."""
        return {"source": source.id, "library": source.libraryId, "path": source.originalPath,
                "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    def _is_reimport_loop(self, item: Brought, outcome: Outcome) -> bool:
        """Immich re-imports a file it could not delete (read-only mount) as a new external asset.
        Its bytes then land on a target whose marker already names the same path and library."""
        if item.created:
            return False
        src = item.source.asset
        for entry in (item.marker or {}).get("sources", []):
            if entry.get("source") != src.id and entry.get("path") == src.originalPath and entry.get("library") == src.libraryId:
                try:
                    earlier = self.c.asset(entry["source"])
                    if not earlier.isTrashed:
                        continue  # both still exist: two assets, not a loop
                except errors.NotFound:
                    pass
                self._write_journals([item], state="loop")
                outcome.kind, outcome.reason = "skipped", "reimport_loop"
                outcome.target_id = item.target_id
                return True
        return False

    # --- journal and carry -----------------------------------------------------------------------

    def _journal(self, item: Brought, state: str) -> dict[str, Any]:
        src = item.source.asset
        return {
            "v": JOURNAL_VERSION, "state": state, "target": item.target_id, "sha1": item.sha1, "size": item.size,
            "created": item.created, "sourceModifiedAt": src.fileModifiedAt, "sourceSize": src.size,
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def _write_journals(self, items: list[Brought], state: str, extra: list[tuple[str, str, dict]] | None = None) -> None:
        writes = [(i.source.asset.id, MARKER, self._journal(i, state)) for i in items] + (extra or [])
        stored = self.c.upsert_metadata(writes, bulk=self.ctx.caps.bulk_metadata)
        wanted = {(a, k) for a, k, _ in writes}
        if self.ctx.caps.bulk_metadata and not wanted <= {(s.assetId, s.key) for s in stored}:
            raise StepFailed("carry", "Immich did not store the journal and provenance metadata")

    def _provenance(self, item: Brought) -> dict[str, Any]:
        src = item.source.asset
        entries = [e for e in (item.marker or {}).get("sources", []) if e.get("source") != src.id]
        entries.append({"source": src.id, "library": src.libraryId, "path": src.originalPath, "sha1": item.sha1,
                        "size": item.size, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        return {"v": JOURNAL_VERSION, "sources": entries[-MAX_MARKER_SOURCES:]}

    def _carry(self, item: Brought, ids: Identity) -> Record:
        """Journal on the source, provenance and key/values on the target, then the copy. Returns what
        the target must hold: the source's record, merged with the target's own when it existed before."""
        source = item.source
        expected = record_of(source, ids.source)
        before = None
        if not item.created:
            before = self._read_target(item.target_id, source)
            expected = merge(expected, record_of(before, ids.target))
        kv = [(item.target_id, m.key, m.value) for m in source.metadata or () if m.key != MARKER]
        # Provenance: a new asset got it with its upload (a killed run's upload too: its marker names this
        # source). A merge target gets this source added to its list; key/values are copied.
        provenance = [] if item.created and (item.provenance or not item.transferred) \
            else [(item.target_id, MARKER, self._provenance(item))]
        writes = provenance + kv
        journal = (lambda: self.c.upsert_metadata(writes, bulk=self.ctx.caps.bulk_metadata)) if writes else (lambda: None)
        copy_args = None
        if self.ctx.caps.copy:
            baseline = record_of(before, ids.target) if before else Record()
            first = writes_for(expected, baseline, source, can_copy=True, can_edit=self.ctx.caps.edits)
            copy = next((w for w in first if w.kind == "copy"), Write("copy", {"albums": False, "shared_links": False, "stack": False}))
            if item.created or any(copy.args.values()):
                copy_args = copy.args
        # The journal and the copy touch different things: send them side by side.
        self.ctx.fan(journal, (lambda: self._copy(item, copy_args)) if copy_args is not None else (lambda: None))
        return expected

    def _copy(self, item: Brought, args: dict[str, Any], sidecar: bool | None = None) -> None:
        """PUT /assets/copy. The stack flag only when the target is not yet in the source's stack:
        a repeated stack copy dissolves the stack (see http._UNSAFE_PUTS)."""
        stack = bool(args.get("stack"))
        if stack and item.source.asset.stack:
            current = self.c.asset(item.target_id).stack
            stack = current is None or current.id != item.source.asset.stack.id
        self.c.copy(item.source.asset.id, item.target_id, albums=bool(args.get("albums", True)),
                    shared_links=bool(args.get("shared_links", True)), stack=stack, favorite=False,
                    sidecar=item.created if sidecar is None else sidecar)

    def _apply(self, writes: list[Write], item: Brought, target: Facts, expected: Record) -> None:
        c, tid, src = self.c, item.target_id, item.source
        for w in writes:
            if w.kind == "copy":
                self._copy(item, w.args, sidecar=False)  # carry copied it: a second copy re-extracts again
            elif w.kind == "add_albums":
                c.add_to_albums(w.args["album_ids"], [tid])
            elif w.kind == "add_shared_links":
                for link in w.args["link_ids"]:
                    c.add_to_shared_link(link, [tid])
            elif w.kind == "join_stack":
                primary = w.args["primary_id"]
                c.create_stack([primary, tid] if primary != tid else [tid, src.asset.id])
            elif w.kind == "set_fields":
                c.update_assets([tid], **w.args)
            elif w.kind == "add_tags" and w.args["tag_ids"]:
                c.tag_assets(w.args["tag_ids"], [tid])
            elif w.kind == "link_live_video" and item.live_target:
                c.update_asset(tid, livePhotoVideoId=item.live_target)
            elif w.kind == "make_stack_primary":
                stack = c.asset(tid).stack
                if stack and stack.primaryAssetId != tid:
                    c.set_stack_primary(stack.id, tid)
            elif w.kind == "set_edits":
                c.set_edits(tid, w.args["edits"])
            elif w.kind == "put_metadata" and w.args["items"]:
                c.upsert_metadata([(tid, k, v) for k, v in w.args["items"]], bulk=self.ctx.caps.bulk_metadata)
            elif w.kind == "set_covers":
                for album in w.args["album_ids"]:
                    c.set_album_cover(album, tid)
            elif w.kind == "add_faces":
                self._reconcile_faces(item, target, expected)

    # --- settle and verify -----------------------------------------------------------------------

    def _settle_and_verify(self, item: Brought, expected: Record, ids: Identity) -> None:
        """Read the target until it covers `expected`: Immich extracts metadata and re-reads the copied
        sidecar in the background, so a value read right after a write can still change. Missing
        pieces are written (once per kind of difference), then re-read. A target that is still
        incomplete after EXT2INT_SETTLE_TIMEOUT waits for a later run; a wrong one fails the asset.

        When the job wrote anything itself, a target that covers is read once more
        EXT2INT_SETTLE_CONFIRM later. Seen on a real Immich 3.1: a metadata extraction still running
        when tags were added (it had read the file before) replaced them with the file's, after
        they had shown; Immich's sidecar write then saved the empty list. A write undone that way is
        made again (twice at most); the source is deleted only once the target has stayed whole."""
        deadline = self.ctx.now() + self.ctx.settle_timeout
        delay, waited, applied = 0.25, 0.0, set()
        confirm_at: float | None = None  # when a target that covers after our writes is looked at again
        last_write, redone = 0.0, 0
        while True:
            target = self._read_target(item.target_id, item.source)
            problem = self._disproof(target.asset, item.sha1, item.size, None)
            if problem:
                if item.fresh:
                    self.c.delete_assets([item.target_id], force=True)  # our own upload, holding the wrong bytes
                    raise StepFailed("prove", problem)
                raise StepFailed("verify", problem)
            item.fresh = False
            if _extracted(target.asset):
                found = differences(expected, record_of(target, ids.target))
                if not found:
                    if not applied or (confirm_at is not None and self.ctx.now() >= confirm_at):
                        return
                    if self.ctx.hard_stop.is_set():
                        raise Waiting("stopping before the job's own writes to the new asset were confirmed")
                    if confirm_at is None:
                        confirm_at = self.ctx.now() + self.ctx.settle_confirm
                    self.ctx.sleep(max(0.0, confirm_at - self.ctx.now()))
                    continue
                confirm_at = None
                if applied and self.ctx.now() - last_write >= self.ctx.settle_confirm and redone < 2:
                    redone += 1  # a write that did not hold (or never showed): Immich undid it; make it again
                    applied.clear()
                todo = [w for w in writes_for(expected, record_of(target, ids.target), item.source,
                                              can_copy=self.ctx.caps.copy, can_edit=self.ctx.caps.edits)
                        if w.kind not in applied]
                if todo:
                    self._apply(todo, item, target, expected)
                    applied.update(w.kind for w in todo)
                    last_write = self.ctx.now()
                    continue
            if self.ctx.now() >= deadline or self.ctx.hard_stop.is_set():
                if not _extracted(target.asset):
                    raise Waiting("Immich has not finished reading the new asset's metadata yet")
                found = differences(expected, record_of(target, ids.target))
                if {d.field for d in found} == {"faces"}:
                    raise Waiting("waiting for Immich's face detection on the new asset")
                raise StepFailed("verify", "the internal asset does not hold everything the external one had",
                                 [f"{item.source.asset.originalFileName}: {d}" for d in found])
            self.ctx.sleep(delay)
            # Immich usually reads a new asset within a second or two: look often at first (this wait
            # holds no transfer slot), then less often
            waited += delay
            delay = 0.25 if waited < 4 else min(delay * 1.5, 3.0)

    def _reconcile_faces(self, item: Brought, target: Facts, expected: Record) -> None:
        """Give every face of the source's people a matching face on the target: assign a detected face
        that overlaps it, or create one when detection is off, found nothing there, or is late."""
        missing = unmatched_faces(expected.faces or frozenset(), _boxes(target.faces or ()))
        if not missing:
            return
        source_faces = {face_box(f): f for f in item.source.faces or () if f.person}
        detected_any = any(f.sourceType == "machine-learning" for f in target.faces or ())
        created_at = _timestamp(target.asset.createdAt) or self.ctx.now()
        may_create = (not self.ctx.caps.facial_recognition or detected_any
                      or self.ctx.now() - created_at >= self.ctx.face_wait)
        waiting = False
        for want in missing:
            overlapping = [f for f in target.faces or ()
                           if (box := face_box(f, any_person=True)) and box.iou(want) >= FACE_IOU]
            if overlapping:
                self.c.reassign_face(overlapping[0].id, want.person_id)
            elif may_create:
                face = source_faces.get(want)
                if face is None:
                    continue
                self.c.create_face(
                    asset_id=item.target_id, person_id=want.person_id, x=face.boundingBoxX1, y=face.boundingBoxY1,
                    width=face.boundingBoxX2 - face.boundingBoxX1, height=face.boundingBoxY2 - face.boundingBoxY1,
                    image_width=face.imageWidth, image_height=face.imageHeight,
                )
            else:
                waiting = True
        if waiting:
            raise Waiting(f"{len(missing)} faces wait for Immich's face detection on the new asset")

    def _finish_people(self, source: Facts, target: Brought) -> None:
        """Immich does not say which photo is a person's cover. When the source is the person's only
        photo besides its new twin, the cover must be on it: point it at the twin before deleting."""
        for person_id in sorted({f.person.id for f in source.faces or () if f.person}):
            try:
                if self.c.person_asset_count(person_id) <= 2:
                    self.c.set_person_feature(person_id, target.target_id)
            except (errors.PermissionMissing, errors.Forbidden, errors.BadRequest, errors.NotFound):
                continue  # optional: the person keeps its current cover image


# --- helpers -----------------------------------------------------------------------------------


def target_marker_of(client: ImmichClient, target_id: str) -> dict[str, Any] | None:
    for item in client.metadata_of(target_id):
        if item.key == MARKER:
            return dict(item.value)
    return None


def _made_for(marker: dict[str, Any] | None, source_id: str) -> bool:
    """Was this internal asset uploaded for this very source (by an earlier, interrupted run)?"""
    sources = (marker or {}).get("sources", [])
    return len(sources) == 1 and sources[0].get("source") == source_id


def _user_metadata(facts: Facts) -> bool:
    return any(m.key != MARKER for m in facts.metadata or ())


def _extracted(asset: Asset) -> bool:
    """Immich fills dateTimeOriginal when it has read the file's metadata (from the file's own dates,
    or its modification time when it has none): before that, comparing would compare nothing."""
    return asset.exifInfo is not None and asset.exifInfo.dateTimeOriginal is not None


def _boxes(faces: tuple[Face, ...]) -> frozenset[FaceBox]:
    return frozenset(b for b in map(face_box, faces) if b is not None)


def _timestamp(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None

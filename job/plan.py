"""Pure decisions: given what is known about one external asset, what happens to it.

No I/O here. `move` asks `decide()` before touching anything and again after re-reading the asset, so
a decision made from a stale listing is never acted on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from job.immich.models import Asset

Action = Literal["move", "finish", "skip"]
JOURNAL_VERSION = 1


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str = ""  # skip reason key (see report.SKIP_REASONS)

    @property
    def label(self) -> str:
        if self.action == "skip":
            return f"skip ({self.reason})"
        if self.action == "finish":
            return "finish (copied earlier: verify, delete)"
        return "move (upload, or merge if already internal)"


def journal_matches(journal: dict[str, Any] | None, source: Asset) -> bool:
    """A journal entry on the source is trusted only while the source file is what was copied: same
    modification time and size as when the bytes were hashed. Otherwise the file changed on disk and
    must be copied again."""
    if not journal or journal.get("v") != JOURNAL_VERSION or not journal.get("target") or not journal.get("sha1"):
        return False
    return journal.get("sourceModifiedAt") == source.fileModifiedAt and journal.get("sourceSize") == source.size


def decide(
    source: Asset,
    *,
    user_id: str,
    delete_mode: str,
    journal: dict[str, Any] | None = None,
    video: Asset | None = None,
    video_expected: bool = False,
) -> Decision:
    """What to do with `source` (and its live-photo `video`, when it is a still with one)."""
    if source.ownerId != user_id:
        return Decision("skip", "other_owner")
    if not source.is_external:
        return Decision("skip", "not_external")
    if source.isTrashed:
        return Decision("skip", "trashed")
    if source.isOffline:
        return Decision("skip", "offline")
    if source.visibility == "locked":
        return Decision("skip", "locked")
    if video_expected and (video is None or video.isOffline or video.isTrashed or video.ownerId != user_id):
        return Decision("skip", "live_video_unavailable")
    state = (journal or {}).get("state")
    if state == "loop" and journal_matches(journal, source):
        return Decision("skip", "reimport_loop")
    if journal_matches(journal, source):
        if state == "kept" and delete_mode == "keep":
            return Decision("skip", "kept")
        return Decision("finish")
    return Decision("move")

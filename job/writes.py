"""The writes that make a target cover a record, in the order they must happen. Pure: `move/carry.py`
turns each kind into Immich calls (and has no case for a kind this module does not make).

`donors` are the external assets whose curation the target receives (one source, or a source and
its path twins): tag ids, edits, key/values and stacks are looked up in them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from job import journal
from job.record import Facts, Record, canonical_edit, canonical_json, differences


class WriteKind(str, Enum):
    COPY = "copy"  # PUT /assets/copy: albums, shared links, stack (servers 2.2+)
    ADD_ALBUMS = "add_albums"  # older servers, instead of the copy
    ADD_SHARED_LINKS = "add_shared_links"
    JOIN_STACK = "join_stack"
    SET_FIELDS = "set_fields"
    ADD_TAGS = "add_tags"
    LINK_LIVE_VIDEO = "link_live_video"
    MAKE_STACK_PRIMARY = "make_stack_primary"
    SET_EDITS = "set_edits"
    PUT_METADATA = "put_metadata"
    SET_COVERS = "set_covers"
    ADD_FACES = "add_faces"


@dataclass(frozen=True)
class Write:
    kind: WriteKind
    args: Mapping[str, Any] = field(default_factory=dict)


def writes_for(expected: Record, actual: Record, donors: Sequence[Facts], *, can_copy: bool, can_edit: bool,
               can_metadata: bool = True) -> list[Write]:
    """The writes that make `actual` cover `expected`.

    Order matters on a real Immich: PUT /assets/copy replaces the target's XMP sidecar and re-reads
    metadata from it, so anything written before the copy can be lost. The copy comes first.
    """
    out: list[Write] = []
    missing = {d.field for d in differences(expected, actual)}
    stacked = [d.asset.stack for d in donors if d.asset.stack is not None]

    copy_albums = "albums" in missing
    copy_links = "shared_links" in missing
    join_stack = "stack" in missing and bool(stacked) and not (
        actual.stack is not None and expected.stack is not None and expected.stack.others <= actual.stack.others
    )
    if can_copy and (copy_albums or copy_links or join_stack):
        out.append(Write(WriteKind.COPY, {"albums": copy_albums, "shared_links": copy_links, "stack": join_stack}))
    else:
        if copy_albums:
            out.append(Write(WriteKind.ADD_ALBUMS, {"album_ids": sorted(expected.albums - (actual.albums or frozenset()))}))
        if copy_links:
            links = sorted(expected.shared_links - (actual.shared_links or frozenset()))
            out.append(Write(WriteKind.ADD_SHARED_LINKS, {"link_ids": links}))
        if join_stack:
            out.append(Write(WriteKind.JOIN_STACK, {"primary_id": stacked[0].primaryAssetId}))

    scalars = _scalars(expected, missing)
    if scalars:
        out.append(Write(WriteKind.SET_FIELDS, scalars))
    if "tags" in missing:
        by_value = {t.value: t.id for d in donors for t in d.asset.tags or ()}
        wanted = sorted(expected.tags - actual.tags)
        out.append(Write(WriteKind.ADD_TAGS, {"tag_ids": [by_value[v] for v in wanted if v in by_value]}))
    if "live_video" in missing:
        out.append(Write(WriteKind.LINK_LIVE_VIDEO))
    if "stack" in missing and expected.stack is not None and expected.stack.primary_is_self:
        out.append(Write(WriteKind.MAKE_STACK_PRIMARY))
    if "edits" in missing and can_edit:
        edits = next((d.edits for d in donors if d.edits and tuple(map(canonical_edit, d.edits)) == expected.edits), None)
        if edits is not None:
            out.append(Write(WriteKind.SET_EDITS, {"edits": [{"action": e.action, "parameters": e.parameters} for e in edits]}))
    if "metadata" in missing and can_metadata:
        have = actual.metadata or frozenset()
        items = {m.key: m.value for d in donors for m in d.metadata or ()
                 if not journal.ours(m.key) and (m.key, canonical_json(m.value)) not in have
                 and (m.key, canonical_json(m.value)) in (expected.metadata or frozenset())}
        out.append(Write(WriteKind.PUT_METADATA, {"items": sorted(items.items(), key=lambda kv: kv[0])}))
    if "covers" in missing:
        out.append(Write(WriteKind.SET_COVERS, {"album_ids": sorted(expected.covers - (actual.covers or frozenset()))}))
    if "faces" in missing and expected.faces:
        out.append(Write(WriteKind.ADD_FACES))
    return out


def _scalars(expected: Record, missing: set[str]) -> dict[str, Any]:
    """One PUT /assets for every single value the target lacks."""
    scalars: dict[str, Any] = {}
    if "favorite" in missing:
        scalars["isFavorite"] = True
    if "visibility" in missing:
        scalars["visibility"] = expected.visibility
    if "description" in missing:
        scalars["description"] = expected.description
    if "rating" in missing:
        scalars["rating"] = expected.rating
    if "taken_at" in missing or "time_zone" in missing:
        if expected.taken_at:
            scalars["dateTimeOriginal"] = expected.taken_at
        if expected.time_zone:
            scalars["timeZone"] = expected.time_zone
    if "gps" in missing and expected.gps is not None:
        scalars["latitude"], scalars["longitude"] = expected.gps
    return scalars


"""Carrying the curation: decide what the target must hold (merging, and naming every conflict), put
the provenance and key/values on it, copy albums, links and stack, and turn each kind of write into
Immich calls. Every write is computed from what the target still lacks, so repeating is harmless,
except the stack copy, which is asked only while the target is not in the source's stack."""

from __future__ import annotations

from typing import Any

from job import journal, ledger
from job.immich import errors
from job.move import read
from job.move.context import Identity, Member, RunContext
from job.record import Conflict, Policy, Record, blocking, merge, record_of
from job.writes import Write, WriteKind, writes_for


def expectation(ctx: RunContext, member: Member, ids: Identity) -> tuple[Record, Record | None, list[Conflict]]:
    """What the target must hold: every source's record merged into the target's own (or, for a target
    made for the source, into the first source's), the target's own record before any write of ours
    (None for a new target), and the conflicts that hold the unit under EXT2INT_ON_CONFLICT. Each record
    is computed once here; the carry and the provenance use them."""
    policy, join = ctx.settings.on_conflict, ctx.settings.join_descriptions
    records = [record_of(f, ids.source) for f in member.sources]
    member.carried = {f.asset.id: r for f, r in zip(member.sources, records)}
    before = None if member.created else record_of(read.target(ctx, member.target_id, member.sources), ids.target)
    expected = records[0] if before is None else before
    conflicts: list[Conflict] = []
    for record in records[1:] if before is None else records:
        expected, found = merge(record, expected, policy, join)
        conflicts += found
    return expected, before, blocking(conflicts, policy)


def carry(ctx: RunContext, member: Member, before: Record | None) -> None:
    """Provenance and key/values on the target, and the copy (albums, shared links, stack; the sidecar
    for a new target), side by side: they touch different things."""
    target = member.target_id
    kv = {m.key: m.value for f in member.sources for m in f.metadata or () if not journal.ours(m.key)}
    writes = [(target, k, v) for k, v in sorted(kv.items())]
    # A new asset got its provenance with its upload (what it must hold included); a merge target gets
    # each source added to its list, with its own record before the job's first write to it: that
    # marker is written before anything else, so that an undo knows what was there before.
    expected = ledger.to_json(member.expected)
    if member.created and member.provenance:  # uploaded now, its provenance with it
        sent = member.sent_expected == expected
    else:
        # Read again, under the target's lock (phase two): another unit may have written it since this one
        # read it (the same photo at two paths). What the target must hold is every source's: the values
        # verified for the others stay in it, or verify and the trash watch would compare with less than
        # the target holds; a value curated since (a later run's finish) joins it.
        member.marker = journal.value_of(ctx.client.metadata_of(target))
        prior = ledger.from_json((member.marker or {}).get("expected"))
        if prior is not None:
            expected = ledger.to_json(merge(member.expected, prior, Policy.EXTERNAL)[0])
        sent = member.created and member.marker is not None and member.marker.get("expected") == expected
    if not sent:
        marker, prior = member.marker, None if member.created else ledger.to_json(before)
        for f in member.sources:
            marker = journal.provenance(marker, f.asset, sha1=member.sha1, size=member.size, at=ctx.clock.time(),
                                        run=ctx.run_id, expected=expected, created=member.created, before=prior,
                                        restored=member.restored)
        if member.created:
            writes.append((target, journal.KEY, marker))
        else:
            ctx.client.upsert_metadata([(target, journal.KEY, marker)], bulk=ctx.caps.bulk_metadata)
    first = None
    if ctx.caps.copy:
        planned = writes_for(member.expected, before or Record(), member.sources, can_copy=True, can_edit=ctx.caps.edits)
        first = next((w for w in planned if w.kind is WriteKind.COPY), None)
        if first is None and member.created:  # the sidecar still comes with the first copy
            first = Write(WriteKind.COPY, {"albums": False, "shared_links": False, "stack": False})
    if first and member.created:
        member.sidecar_at = ctx.clock.monotonic()
    ctx.fan((lambda: ctx.client.upsert_metadata(writes, bulk=ctx.caps.bulk_metadata)) if writes else (lambda: None),
            (lambda: copy(ctx, member, first.args, sidecar=member.created)) if first else (lambda: None))


def copy(ctx: RunContext, member: Member, args: Any, *, sidecar: bool) -> None:
    """PUT /assets/copy from every source. The stack flag only while the target is not yet in that
    source's stack: a repeated stack copy dissolves the stack (see endpoints.py)."""
    for index, source in enumerate(member.sources):
        stack = bool(args.get("stack")) and source.asset.stack is not None
        if stack:
            current = ctx.client.asset(member.target_id).stack
            stack = current is None or current.id != source.asset.stack.id
        with_sidecar = sidecar and index == 0 and not member.sidecar_missing
        try:
            ctx.client.copy(source.asset.id, member.target_id, albums=bool(args.get("albums", True)),
                            shared_links=bool(args.get("shared_links", True)), stack=stack, favorite=False,
                            sidecar=with_sidecar)
        except errors.ServerError:
            if not with_sidecar:
                raise
            # Immich copies the sidecar last and fails the whole call when the source's recorded sidecar
            # file is gone from disk (seen on 3.1.0: the other half of a RAW+JPEG pair took it, or it was
            # deleted by hand). Copy the rest without it; the values it carried are then written through
            # the API (verify writes what the target lacks at once, without waiting for a sidecar).
            member.sidecar_missing, member.sidecar_at = True, None
            copy(ctx, member, args, sidecar=False)
            return

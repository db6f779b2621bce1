"""Runs exclude each other: two processes (a CronJob and a manual run, two compose services, a restarted
pod, or several workers sharing a big library) never both act on one asset.

Immich itself is the coordination store, so nothing else has to run beside the job: a claim is a
key/value (`immich-ext2int-claim`) on each source of a unit, naming the run and the unit, with an
expiry. Immich offers no compare-and-set, so the claim follows Fischer's mutual-exclusion protocol:

1. read the claims; if any belongs to another holder and has not expired, the unit is skipped;
2. write ours, all in one request, and insist that the read and the write took at most D seconds
   together (else start over);
3. wait W > D seconds, read the claims again, and act only if every one is still ours.

Why at most one holder acts: suppose A and B both read back their own claim on an asset in step 3, and
A's write took effect first. B's write must have come after A's step-3 read (else A would have read
B's claim), so at least W after A's write; B's step-1 read came at most D before B's write, so more than
W - D > 0 after A's write: B read A's live claim and stopped at step 1. A contradiction.
A crashed holder's claim expires by itself after EXT2INT_CLAIM_TTL (2 minutes): a live holder renews
its claims while their units are in flight (`job/move/held.py`), so the TTL bounds only how long a dead run's
claims stand. Claims compare wall-clock times across processes: a holder stops acting when less than
Settings.claim_margin of its claim is left, so clocks that disagree by less than that (NTP keeps them
far closer) cannot let two processes act.

Why renewing keeps this: a renewal is a write over our own live claim, with no read before it. It counts
(the holder acts longer) only when Immich answered it while the claim it renews still had more than the
margin left: then it landed while the old claim stood, when nobody else could have claimed the asset.
A renewal answered too late, or not at all, does not count: the holder stops at the old claim's end.
If such a write lands after another run took the asset, the other run reads our claim at its step 3 or
at its gate and backs off: never two acting, only a wait until it expires.

D and W are real elapsed time (other processes live in it), so they are measured with the system's
clock, never the run's test seam; the expiry is the seam's wall-clock time (tests let claims expire).
"""

from __future__ import annotations

from job import journal
from job.clock import SYSTEM
from job.immich import errors
from job.immich.models import MetadataItem
from job.journal import CLAIM_KEY, Claim
from job.move.context import RunContext, Waiting


def take(ctx: RunContext, ids: list[str], unit: str,
         known: tuple[float, dict[str, tuple[MetadataItem, ...]]] | None = None,
         over: frozenset[str] = frozenset(), also: list[tuple[str, str, dict]] | None = None) -> tuple[Claim, float] | None:
    """Steps 1 and 2 for the assets `ids`. Returns our claim and when it was written (monotonic), or
    None when another live claim holds one of them; raises TooSlow (a wait: a later run tries again)
    when Immich answered too slowly to claim safely. The claim lasts EXT2INT_CLAIM_TTL and is renewed
    while its unit is in flight (`job/move/held.py`), until it is released.

    `known`: the key/values of `ids` as the read step fetched them, with the (system) time that read
    began: step 1's read when it is recent enough, saving a request per asset. `over`: ids whose current
    claim does not block (an undo's trashed sources: a move that trashed a source is done with it, its
    claim only lingers until it expires). `also`: key/values written in the same request as the claim
    (the journal's upload intent: see bring.intent)."""
    limit = ctx.settings.claim_read_write
    life = ctx.settings.claim_ttl
    for attempt in range(3):
        mine = Claim(ctx.run_id, unit, ctx.clock.time() + life)
        if attempt == 0 and known is not None and set(ids) <= set(known[1]):
            started = known[0]
            current = {i: Claim.of(journal.value_of(known[1][i], CLAIM_KEY)) for i in ids}
        else:
            started = SYSTEM.monotonic()
            current = read(ctx, ids)
        now = ctx.clock.time()
        if any(journal.claim_blocks(current[i], mine, now) for i in ids if i not in over):
            return None
        ctx.client.upsert_metadata([(i, CLAIM_KEY, mine.value()) for i in ids] + (also or []),
                                   bulk=ctx.caps.bulk_metadata)
        written = SYSTEM.monotonic()
        if written - started <= limit:
            ctx.held.add(ctx, mine, ids)
            return mine, written
    # Too slow three times: no proof, so no acting. The claims written meanwhile are ours and would keep
    # every run off these assets until they expire (seen in the long property run on a loaded machine):
    # give back those still ours. Writing over one another holder wrote meanwhile only makes that holder
    # back off at its step 3: never two acting.
    current = read(ctx, ids)
    release(ctx, mine, [i for i in ids if mine.same_holder(current[i])])
    raise TooSlow(f"Immich answered too slowly to claim it safely (a read and a write took more than "
                  f"{limit:.1f}s, two thirds of EXT2INT_CLAIM_WAIT): a later run tries again")


class TooSlow(Waiting):
    """Claiming could not be proven safe in time: nothing was done, and the claims are given back."""


def confirm(ctx: RunContext, claim: Claim, ids: list[str], written: float) -> bool:
    """Step 3: after the wait, are all the claims still ours?"""
    if SYSTEM.sleep(max(0.0, written + ctx.settings.claim_wait - SYSTEM.monotonic()), until=ctx.hard_stop):
        return False  # cut short by a second signal: the wait is the proof, so no proof
    current = read(ctx, ids)
    return all(claim.same_holder(current[i]) for i in ids)


def holds(ctx: RunContext, claim: Claim | None, metadata: tuple[MetadataItem, ...] | None) -> bool:
    """Is `claim` still the one on an asset whose key/values are `metadata`, with time to spare? Its
    end is the last one this process saw Immich take in time (a renewal that came back too late does
    not count, even when the asset shows it)."""
    current = Claim.of(journal.value_of(metadata, CLAIM_KEY))
    return claim is not None and journal.claim_holds(current, ctx.held.latest(claim), ctx.clock.time(),
                                                     ctx.settings.claim_margin)


def release(ctx: RunContext, claim: Claim | None, ids: list[str]) -> None:
    """Let others take the assets at once: our claims, expired. Only written while they are still ours
    and alive (nobody else writes over a live claim), so this never clobbers another holder's."""
    if claim is None or not ids:
        return
    with ctx.held.ending(claim) as latest:
        if ctx.clock.time() + ctx.settings.claim_margin >= latest.until:
            return
        over = Claim(claim.run, claim.unit, 0.0)
        ctx.client.upsert_metadata([(i, CLAIM_KEY, over.value()) for i in ids], bulk=ctx.caps.bulk_metadata)


def let_go(ctx: RunContext, claim: Claim | None, ids: list[str]) -> None:
    """Release the claims of a unit that has ended; when Immich does not answer now, the run tries once
    more on its way out (`release_left`), so that no other run waits EXT2INT_CLAIM_TTL for nothing."""
    try:
        release(ctx, claim, ids)
    except errors.ImmichError:
        if claim is not None and ids:
            ctx.unreleased.append((ctx.held.latest(claim), ids))
        raise


def release_left(ctx: RunContext) -> int:
    """On the run's way out (whatever ended it): release the claims of ended units that Immich did not
    take back when they ended. Units still in flight keep theirs (a thread may still act on them: they
    expire by themselves). Returns how many units' claims are still left."""
    left, ctx.unreleased[:] = list(ctx.unreleased), []
    still = 0
    for claim, ids in left:
        try:
            release(ctx, claim, ids)
        except errors.ImmichError:
            still += 1
    return still


def read(ctx: RunContext, ids: list[str]) -> dict[str, Claim | None]:
    values = ctx.fan(*[(lambda i=i: ctx.client.metadata_of(i)) for i in ids])
    return {i: Claim.of(journal.value_of(items, CLAIM_KEY)) for i, items in zip(ids, values)}


"""The claims a run holds (job/move/claim.py), and the thread that renews them while their units are in
flight: a claim lasts EXT2INT_CLAIM_TTL (2 minutes) past its last renewal, so a run that died without
releasing its claims holds its units for minutes, not for the length of the longest move."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from job.clock import Clock
from job.immich import errors
from job.journal import CLAIM_KEY, Claim

log = logging.getLogger("ext2int")


@dataclass
class _Live:
    ctx: Any  # the RunContext of the user whose key claimed
    claim: Claim  # its `until` is the latest end Immich took in time
    ids: list[str]


class Held:
    """The claims this run holds, with the latest end of each that Immich took in time. One for a run
    (all its users' contexts). A claim leaves it when its unit ends (`ending`): from then on it is never
    renewed, so a released claim is never written live again by this run."""

    def __init__(self) -> None:
        self._live: dict[tuple[str, str], _Live] = {}  # renewed while their units are in flight
        self._ended: dict[tuple[str, str], Claim] = {}  # units that ended (or whose sources go): their latest end
        self._lock = threading.Lock()  # one renewal or one ending at a time
        self.renewals = 0  # renewal requests made (the cost of short claims; see the README)

    def add(self, ctx: Any, claim: Claim, ids: list[str]) -> None:
        with self._lock:
            self._ended.pop((claim.run, claim.unit), None)
            self._live[(claim.run, claim.unit)] = _Live(ctx, claim, list(ids))

    def latest(self, claim: Claim) -> Claim:
        with self._lock:
            return self._latest(claim)

    @contextmanager
    def ending(self, claim: Claim) -> Iterator[Claim]:
        """The claim leaves the renewals (waiting for one in flight to end); yields its latest end, for a
        release written while no renewal can overtake it."""
        with self._lock:
            self._end(claim)
            yield self._latest(claim)

    def drop(self, claims: list[Claim | None]) -> None:
        """Claims of units whose sources go now (the gate's delete): never renewed again."""
        with self._lock:
            for claim in claims:
                if claim is not None:
                    self._end(claim)

    def _latest(self, claim: Claim) -> Claim:
        key = (claim.run, claim.unit)
        live = self._live.get(key)
        latest = live.claim if live is not None else self._ended.get(key)
        return latest if latest is not None and latest.until > claim.until else claim

    def _end(self, claim: Claim) -> None:
        """Never renewed again; only its latest end is kept (the renewals look at live claims alone)."""
        live = self._live.pop((claim.run, claim.unit), None)
        if live is not None:
            self._ended[(claim.run, claim.unit)] = live.claim

    def renew(self, clock: Clock, ttl: float, margin: float) -> None:
        """Renew every claim with less than three quarters of `ttl` left (and more than `margin`): one
        write per user's key. A renewal counts when Immich answered it while the claim it renews still
        had more than `margin` left (see the module's docstring)."""
        with self._lock:
            now = clock.time()
            due = [v for v in self._live.values() if now + margin < v.claim.until < now + ttl * 3 / 4]
            by_ctx: dict[int, list[_Live]] = {}
            for live in due:
                by_ctx.setdefault(id(live.ctx), []).append(live)
            for group in by_ctx.values():
                ctx, until = group[0].ctx, now + ttl
                writes = [(i, CLAIM_KEY, replace(v.claim, until=until).value()) for v in group for i in v.ids]
                self.renewals += 1
                try:
                    ctx.client.upsert_metadata(writes, bulk=ctx.caps.bulk_metadata)
                except errors.ImmichError as exc:
                    log.debug("could not renew %d claim(s): %s", len(group), exc)
                    continue
                answered = clock.time()
                for live in group:
                    if answered + margin < live.claim.until:
                        live.claim = replace(live.claim, until=until)


class Renewer:
    """The thread that renews a run's claims while their units are in flight (`Held.renew`), looking
    often: the time it compares with is the run's clock (the tests' clock jumps)."""

    POLL = 0.2  # seconds between looks (no request unless a claim is due)

    def __init__(self, held: Held, clock: Clock, ttl: float, margin: float):
        self.held, self.clock, self.ttl, self.margin = held, clock, ttl, margin
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="claims", daemon=True)

    def __enter__(self) -> Renewer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.POLL):
            try:
                self.held.renew(self.clock, self.ttl, self.margin)
            except Exception:  # noqa: BLE001 - a renewal that breaks must not end the run: its units stop in time
                log.exception("renewing claims failed")


def renewing(ctxs: dict[str, Any]) -> Renewer:
    """`with renewing(ctxs):` around a command that claims: its claims stay alive while it works."""
    ctx = next(iter(ctxs.values()))
    return Renewer(ctx.held, ctx.clock, ctx.settings.claim_ttl, ctx.settings.claim_margin)

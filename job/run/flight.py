"""Units in flight, in two phases. Phase one (read, claim, transfer) takes one of the EXT2INT_CONCURRENCY
slots; phase two (confirm the claim, carry, settle, verify) runs in a separate, larger pool, so new
transfers start while Immich is still digesting earlier uploads. Memory stays bounded: a unit in phase
two holds no bytes, and their number is capped too. A verified unit then waits at the delete gate."""

from __future__ import annotations

import concurrent.futures as cf
import logging
from collections.abc import Callable

from job.move import Mover
from job.move.context import Pending, Unit
from job.outcome import Outcome, Stage
from job.settings import Pools

log = logging.getLogger("ext2int")


class Flight:
    def __init__(self, mover_for: Callable[[Unit], Mover], pools: Pools, *, finished: Callable[[Outcome | Pending], None],
                 transferred: Callable[[Outcome], None]):
        """`mover_for(unit)`: the mover of the unit's user (each user's units move with their key)."""
        self.mover_for, self.pools, self.finished, self.transferred = mover_for, pools, finished, transferred
        self.movers = cf.ThreadPoolExecutor(max_workers=pools.movers, thread_name_prefix="move")
        self.finishers = cf.ThreadPoolExecutor(max_workers=pools.finishers, thread_name_prefix="finish")
        self.active: dict[cf.Future, tuple[str, Unit]] = {}

    def count(self, phase: str) -> int:
        return sum(1 for kind, _ in self.active.values() if kind == phase)

    def has_room(self) -> bool:
        return self.count("move") < self.pools.movers and self.count("finish") < self.pools.finishers

    def start(self, unit: Unit) -> None:
        self.active[self.movers.submit(self.mover_for(unit).move, unit)] = ("move", unit)

    def collect(self, timeout: float | None) -> None:
        if not self.active:
            return
        done, _ = cf.wait(list(self.active), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        for future in done:
            phase, unit = self.active.pop(future)
            result = _result_or_failure(future, unit)
            if phase == "move":
                self.transferred(result.outcome if isinstance(result, Pending) else result)
            if isinstance(result, Pending) and not result.verified:
                self.active[self.finishers.submit(self.mover_for(unit).complete, result)] = ("finish", unit)
            else:
                self.finished(result)

    def abandon(self) -> list[Unit]:
        units = [unit for _, unit in self.active.values()]
        self.active.clear()
        return units

    def shutdown(self, wait: bool) -> None:
        self.movers.shutdown(wait=wait, cancel_futures=True)
        self.finishers.shutdown(wait=wait, cancel_futures=True)


def _result_or_failure(future: cf.Future, unit: Unit) -> Outcome | Pending:
    try:
        return future.result()
    except Exception as exc:  # a bug must not lose the account of the asset
        log.exception("unexpected error moving %s", unit.asset.originalPath)
        return unit.outcome().fail(Stage.INCOMPLETE, f"unexpected error: {type(exc).__name__}: {exc}")

"""Units in flight, in two phases. Phase one (read, claim, transfer) takes one of the EXT2INT_CONCURRENCY
slots; phase two (confirm the claim, carry, settle, verify) runs in a separate, larger pool, so new
transfers start while Immich is still digesting earlier uploads. Memory stays bounded: a unit in phase
two holds no bytes, and their number is capped too. A verified unit then waits at the delete gate."""

from __future__ import annotations

import concurrent.futures as cf
import logging
import queue
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
        # Each future puts itself here when it ends: collecting waits on one queue, not on every unit in
        # flight (cf.wait installs and removes a waiter on each of them, each time: with a hundred units
        # waiting in phase two, a tenth of the job's CPU).
        self._ended: queue.SimpleQueue[cf.Future] = queue.SimpleQueue()

    def count(self, phase: str) -> int:
        return sum(1 for kind, _ in self.active.values() if kind == phase)

    def has_room(self) -> bool:
        return self.count("move") < self.pools.movers and self.count("finish") < self.pools.finishers

    def start(self, unit: Unit) -> None:
        self._submit(self.movers, "move", unit, self.mover_for(unit).move, unit)

    def _submit(self, pool: cf.ThreadPoolExecutor, phase: str, unit: Unit, work, arg) -> None:
        future = pool.submit(work, arg)
        self.active[future] = (phase, unit)
        future.add_done_callback(self._ended.put)  # at once if it has already ended

    def _ended_now(self, timeout: float | None) -> list[cf.Future]:
        """The units in flight that have ended: waits up to `timeout` (None: for ever) for a first one."""
        done = []
        try:
            done.append(self._ended.get(timeout=timeout) if timeout is None or timeout > 0 else self._ended.get_nowait())
            while True:
                done.append(self._ended.get_nowait())
        except queue.Empty:
            pass
        return [f for f in done if f in self.active]  # an abandoned unit's future may end later: not ours now

    def collect(self, timeout: float | None) -> None:
        if not self.active:
            return
        for future in self._ended_now(timeout):
            phase, unit = self.active.pop(future)
            result = _result_or_failure(future, unit)
            if phase == "move":
                self.transferred(result.outcome if isinstance(result, Pending) else result)
            if isinstance(result, Pending) and not result.verified:
                self._submit(self.finishers, "finish", unit, self.mover_for(unit).complete, result)
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

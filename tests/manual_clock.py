"""A manual `Clock` for tests: time moves only when a test advances it, with no real sleeps."""

from __future__ import annotations

import asyncio
import heapq
import itertools


class ManualClock:
    """A clock that moves only when told to; sleepers wake in deadline order, no real sleeps."""

    def __init__(self, start: float = 0.0) -> None:
        """Start at `start` seconds with nobody asleep."""
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        """Return the manual time."""
        return self._now

    @property
    def sleepers(self) -> int:
        """Number of tasks currently waiting for a deadline."""
        return sum(1 for *_, fut in self._sleepers if not fut.done())

    async def sleep_until(self, deadline: float) -> None:
        """Wait until `advance` moves time to `deadline`."""
        if deadline <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._order), future))
        await future

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its deadline and letting it run."""
        await self.advance_to(self._now + seconds)

    async def advance_to(self, target: float) -> None:
        """Move time to `target`, stepping through every earlier deadline in order."""
        await _settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not future.done():
                future.set_result(None)
            await _settle()
        self._now = max(self._now, target)
        await _settle()


async def _settle(rounds: int = 8) -> None:
    """Give ready tasks a few loop iterations to run up to their next wait."""
    for _ in range(rounds):
        await asyncio.sleep(0)
